"""A generator of 100 chunks of 1 KiB and no Content-Length: the server picks the framing
(chunked on HTTP/1.1, or close-delimited)."""

CHUNK = b"x" * 1024
CHUNKS = 100


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return (CHUNK for _ in range(CHUNKS))


app = application
