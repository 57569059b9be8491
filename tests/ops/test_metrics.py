"""`--metrics-bind`: /metrics (Prometheus text format, parsed with prometheus_client's own
parser), /status.json and the /status page, scraped from a real server while load runs.

Counters are checked exactly against the requests the test sent: the server is fresh, and the
metrics listener's own requests are not counted (they are not application requests).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client.parser import text_string_to_metric_families

METRICS_RE = re.compile(r"Metrics at: http://127\.0\.0\.1:(\d+)/metrics")

#: Requests per kind sent by the load.
N_GET = 300
N_POST = 40
N_SLOW = 12
N_MISSING = 25
SLOW_MS = 60
UPLOAD = b"u" * 3000


def _start(ferrule_server):
    srv = ferrule_server("load_app", "--threads", "4", "--metrics-bind", "127.0.0.1:0")
    m = srv.err.wait_for(METRICS_RE, 10)
    assert m, srv.log_text()
    return srv, int(m.group(1))


def _get(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}, via prometheus_client."""
    status, headers, body = _get(port, "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        assert family.name.startswith("ferrule_"), family.name
        assert family.documentation, family.name
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def _requests(samples, status_class: str, method: str) -> float:
    key = ("ferrule_requests_total", (("method", method), ("status_class", status_class)))
    return samples[key]


def _buckets(samples) -> list[tuple[float, float]]:
    out = [
        (float(dict(labels)["le"]), v)
        for (name, labels), v in samples.items()
        if name == "ferrule_request_duration_seconds_bucket"
    ]
    return sorted(out)


def _load(port: int) -> int:
    """Sends the load over keep-alive connections; returns the response bytes received."""

    def worker(kind: str, n: int) -> int:
        got = 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        try:
            for _ in range(n):
                if kind == "get":
                    conn.request("GET", "/hello")
                elif kind == "post":
                    conn.request("POST", "/upload", body=UPLOAD)
                elif kind == "slow":
                    conn.request("GET", f"/slow?ms={SLOW_MS}")
                else:
                    conn.request("GET", "/missing")
                r = conn.getresponse()
                got += len(r.read())
        finally:
            conn.close()
        return got

    plan = [("get", N_GET // 6)] * 6 + [("post", N_POST // 4)] * 4
    plan += [("slow", N_SLOW // 3)] * 3 + [("missing", N_MISSING)]
    with ThreadPoolExecutor(len(plan)) as pool:
        return sum(pool.map(lambda p: worker(*p), plan))


def test_metrics_count_exactly_what_was_sent(ferrule_server):
    srv, mport = _start(ferrule_server)
    before = _scrape(mport)
    assert _requests(before, "2xx", "GET") == 0
    assert before[("ferrule_requests_in_flight", ())] == 0

    # Scrape and parse continuously while the load runs: every scrape must parse, and the
    # counters never go down.
    stop = threading.Event()
    scrapes: list[dict] = []
    failures: list[BaseException] = []

    def scraper():
        while not stop.is_set():
            try:
                scrapes.append(_scrape(mport))
            except BaseException as exc:  # noqa: BLE001 - reported by the test below
                failures.append(exc)
                return
            time.sleep(0.02)

    t = threading.Thread(target=scraper, daemon=True)
    t.start()
    received = _load(srv.port)
    stop.set()
    t.join(10)
    assert not failures, failures
    assert len(scrapes) >= 3
    totals = [sum(v for (n, _), v in s.items() if n == "ferrule_requests_total") for s in scrapes]
    assert totals == sorted(totals)

    # In flight goes back to 0 once the last response is written (the gauge drops right after
    # the write, so give it a moment).
    deadline = time.monotonic() + 5
    while True:
        after = _scrape(mport)
        if after[("ferrule_requests_in_flight", ())] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert after[("ferrule_requests_in_flight", ())] == 0

    assert _requests(after, "2xx", "GET") == N_GET + N_SLOW
    assert _requests(after, "2xx", "POST") == N_POST
    assert _requests(after, "4xx", "GET") == N_MISSING
    assert _requests(after, "5xx", "GET") == 0
    total = N_GET + N_SLOW + N_POST + N_MISSING
    assert sum(v for (n, _), v in after.items() if n == "ferrule_requests_total") == total

    # The histogram: cumulative, +Inf = count = requests; the slow ones are above 50 ms.
    buckets = _buckets(after)
    assert [le for le, _ in buckets][-1] == float("inf")
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)
    assert counts[-1] == total
    assert after[("ferrule_request_duration_seconds_count", ())] == total
    le_50ms = dict(buckets)[0.05]
    assert le_50ms <= total - N_SLOW
    assert after[("ferrule_request_duration_seconds_sum", ())] >= N_SLOW * SLOW_MS / 1000

    # Bytes: at least every request body and response body crossed the wire.
    assert after[("ferrule_received_bytes_total", ())] >= N_POST * len(UPLOAD)
    assert after[("ferrule_sent_bytes_total", ())] >= received
    assert after[("ferrule_connections_total", ())] >= 14
    assert after[("ferrule_connections_refused_total", ())] == 0
    assert after[("ferrule_queue_depth", ())] == 0
    assert after[("ferrule_resident_memory_bytes", ())] > 1024 * 1024


def test_status_json_and_page(ferrule_server):
    srv, mport = _start(ferrule_server)
    for _ in range(5):
        assert srv.get("/hello").status == 200
    status, headers, body = _get(mport, "/status.json")
    assert status == 200
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["requests_total"] == 5
    assert doc["requests"]["2xx"]["GET"] == 5
    assert doc["latency"]["cumulative_counts"][-1] == 5
    assert len(doc["latency"]["buckets_ms"]) == 13
    assert doc["in_flight"] == 0
    assert doc["pid"] == srv.pid

    status, headers, page = _get(mport, "/status")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    text = page.decode()
    assert "<svg" in text and "polyline" in text and 'fetch("/status.json"' in text
    assert "setInterval(tick, 1000)" in text
    assert "http://" not in text and "https://" not in text  # self-contained: no CDN

    # HEAD, unknown paths and methods.
    status, headers, body = _get(mport, "/metrics", "HEAD")
    assert (status, body) == (200, b"")
    assert int(headers["content-length"]) > 100
    assert _get(mport, "/nope")[0] == 404
    status, headers, _ = _get(mport, "/metrics", "POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    # The metrics listener's own requests are not application requests.
    assert json.loads(_get(mport, "/status.json")[2])["requests_total"] == 5


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (CI installs it and never skips)",
)
@pytest.mark.timeout(120)
def test_status_page_renders_charts_in_chromium(ferrule_server, tmp_path):
    srv, mport = _start(ferrule_server)
    stop = threading.Event()

    def load():
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
        try:
            while not stop.is_set():
                conn.request("GET", "/slow?ms=5")
                conn.getresponse().read()
        finally:
            conn.close()

    threads = [threading.Thread(target=load, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    png = tmp_path / "status.png"
    try:
        # --virtual-time-budget lets the page run its 1 s polling for several ticks before the
        # screenshot, without depending on wall-clock timing.
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={tmp_path / 'profile'}",
                "--virtual-time-budget=6000",
                f"--screenshot={png}",
                "--window-size=1200,800",
                f"http://127.0.0.1:{mport}/status",
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # The chart lines are drawn in their own colors (#1f77b4, #d62728): find them in the
    # decoded pixels.
    pixels = _png_rgb(data)
    assert _near(pixels, (0x1F, 0x77, 0xB4)) >= 50, "no RPS/p50 line drawn"
    assert _near(pixels, (0xD6, 0x27, 0x28)) >= 20, "no p99 line drawn"


def _near(pixels: dict[tuple[int, int, int], int], color: tuple[int, int, int]) -> int:
    """How many pixels are close to `color` (antialiased line pixels included)."""
    return sum(n for c, n in pixels.items() if sum(abs(a - b) for a, b in zip(c, color)) <= 40)


def _png_rgb(data: bytes) -> dict[tuple[int, int, int], int]:
    """Pixel counts by RGB color of an 8-bit RGB/RGBA PNG (enough for Chromium's screenshots)."""
    import struct
    import zlib

    pos, idat, width, height, ctype = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", chunk[:10])
            assert depth == 8 and ctype in (2, 6), (depth, ctype)
        elif kind == b"IDAT":
            idat += chunk
        pos += 12 + length
    bpp = 4 if ctype == 6 else 3
    raw = zlib.decompress(idat)
    stride = width * bpp
    prev = bytearray(stride)
    colors: dict[tuple[int, int, int], int] = {}
    i = 0
    for _ in range(height):
        ftype, line = raw[i], bytearray(raw[i + 1 : i + 1 + stride])
        i += 1 + stride
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b = prev[x]
            c = prev[x - bpp] if x >= bpp else 0
            if ftype == 1:
                line[x] = (line[x] + a) & 0xFF
            elif ftype == 2:
                line[x] = (line[x] + b) & 0xFF
            elif ftype == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[x] = (line[x] + pred) & 0xFF
        for x in range(0, stride, bpp):
            rgb = (line[x], line[x + 1], line[x + 2])
            colors[rgb] = colors.get(rgb, 0) + 1
        prev = line
    return colors
