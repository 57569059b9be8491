"""A Flask route returning a small JSON document: a realistic framework stack on top."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/json")
def json_route():
    return jsonify(message="Hello, World!", items=list(range(10)))


application = app
