"""Serves a file through `wsgi.file_wrapper`. NOT wrapped in the validator: the validator returns
its own iterator around whatever the app returns, which would hide the FileWrapper from the server
and test the fallback instead of the file path.

The file is the one named by the FERRULE_TEST_FILE environment variable.
Routes:
  /file              file_wrapper(open(path)), no Content-Length
  /file-cl           same, with the file's Content-Length
  /file-offset?off=N the file seeked to N first: the body starts at N
  /file-blksize      file_wrapper(f, 1000)
  /filelike          file_wrapper(BytesIO(contents)): an object without fileno()
"""

from __future__ import annotations

import io
import os

from _util import query

# The files below are opened without `with` on purpose: the file wrapper owns them, and the
# server must close them (PEP 3333: close() on the iterable); a leak shows up as a ResourceWarning.
PATH = os.environ.get("FERRULE_TEST_FILE", "")
TEXT = ("Content-Type", "application/octet-stream")


def application(environ, start_response):
    path = environ["PATH_INFO"]
    wrapper = environ["wsgi.file_wrapper"]
    if path == "/file":
        start_response("200 OK", [TEXT])
        return wrapper(open(PATH, "rb"))
    if path == "/file-cl":
        start_response("200 OK", [TEXT, ("Content-Length", str(os.path.getsize(PATH)))])
        return wrapper(open(PATH, "rb"))
    if path == "/file-offset":
        f = open(PATH, "rb")  # noqa: SIM115
        f.seek(int(query(environ)["off"]))
        start_response("200 OK", [TEXT])
        return wrapper(f)
    if path == "/file-blksize":
        start_response("200 OK", [TEXT])
        return wrapper(open(PATH, "rb"), 1000)
    if path == "/filelike":
        with open(PATH, "rb") as f:
            data = f.read()
        start_response("200 OK", [TEXT])
        return wrapper(io.BytesIO(data))
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
