"""The smallest WSGI app: `ferrule examples/hello.py` (or `make serve`)."""


def application(environ, start_response):
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
