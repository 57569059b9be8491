"""A 1 MiB body built once at import: measures how a server writes one large buffer."""

BODY = b"x" * (1024 * 1024)
HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


app = application
