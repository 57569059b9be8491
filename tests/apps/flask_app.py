"""A Flask app driven by tests/frameworks/ (a real framework, not wrapped in the validator)."""

from __future__ import annotations

import hashlib

from flask import Flask, Response, jsonify, request, stream_with_context

app = Flask(__name__)


@app.get("/")
def index():
    return "flask index"


@app.get("/hello/<name>")
def hello(name):
    return f"hello {name}"


@app.get("/query")
def query():
    return jsonify({k: request.args.getlist(k) for k in request.args})


@app.post("/form")
def form():
    return jsonify({k: request.form.getlist(k) for k in request.form})


@app.post("/upload")
def upload():
    f = request.files["file"]
    data = f.read()
    return jsonify(
        {
            "filename": f.filename,
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "field": request.form.get("field"),
        }
    )


@app.post("/json")
def json_echo():
    payload = request.get_json()
    return jsonify({"got": payload, "type": type(payload).__name__})


@app.get("/stream")
def stream():
    n = int(request.args.get("n", "5"))

    def gen():
        for i in range(n):
            yield f"line {i}\n"

    return Response(stream_with_context(gen()), mimetype="text/plain")


@app.get("/cookie/set")
def cookie_set():
    resp = Response("set")
    resp.set_cookie("flavour", request.args.get("v", "oatmeal"))
    resp.set_cookie("second", "2")
    return resp


@app.get("/cookie/get")
def cookie_get():
    return jsonify(dict(request.cookies))


@app.get("/status/<int:code>")
def status(code):
    return Response("status", status=code)
