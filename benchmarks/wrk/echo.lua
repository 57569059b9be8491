-- POST of a 64 KiB body to the echo app (wrk adds the Content-Length).
wrk.method = "POST"
wrk.body = string.rep("x", 64 * 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
