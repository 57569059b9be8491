"""The smallest WSGI app: a 13-byte body with Content-Length (scenarios hello, close, pipeline)."""

BODY = b"Hello, World!"
HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


app = application
