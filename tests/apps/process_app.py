"""App for the process-settings tests (tests/ops/test_process.py).

- `/ids`: `UID GID PID` of the serving process.
- `/env?name=N`: the value of environment variable N in the serving process (`None` if unset).
- `/create?path=P`: creates the file P (mode 0o666 before the umask) and answers its mode, octal.
- anything else: `ok PID`.
"""

import os

# No stdlib import beyond `os`: the user-switch tests load this app in a worker running as
# `nobody`, which cannot read a Python installed under /root (mode 0700) and so cannot import
# a module the server did not load before the switch.


def parse_qs(query: str) -> dict[str, list[str]]:
    """`a=1&b=2` (no percent-decoding: the tests send plain values) as urllib's parse_qs."""
    out: dict[str, list[str]] = {}
    for pair in query.split("&"):
        name, _, value = pair.partition("=")
        if name:
            out.setdefault(name, []).append(value)
    return out


def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/ids":
        body = f"{os.getuid()} {os.getgid()} {os.getpid()}"
    elif path == "/env":
        name = parse_qs(environ.get("QUERY_STRING", ""))["name"][0]
        body = str(os.environ.get(name))
    elif path == "/create":
        target = parse_qs(environ.get("QUERY_STRING", ""))["path"][0]
        fd = os.open(target, os.O_CREAT | os.O_WRONLY, 0o666)
        os.close(fd)
        body = oct(os.stat(target).st_mode & 0o777)
    else:
        body = f"ok {os.getpid()}"
    data = body.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
