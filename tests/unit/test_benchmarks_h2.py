"""benchmarks/run.py's HTTP/2 pieces, without running a benchmark: the h2load summary parser
(on output captured from nghttp2 1.52) and the server command lines of the h2c and TLS
scenarios (ferrule and granian in the same run; the other peers have no HTTP/2)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

H2LOAD_OUTPUT = """\
Application protocol: h2
finished in 3.00s, 8064.00 req/s, 370.21KB/s
requests: 16130 total, 16130 started, 16129 done, 16128 succeeded, 1 failed, 1 errored, 0 timeout
status codes: 16128 2xx, 0 3xx, 1 4xx, 0 5xx
traffic: 740.43KB (758200) total, 208.00KB (212995) headers (space savings 90.41%)
                     min         max         mean         sd        +/- sd
time for request:      950us     23.96ms      4.91ms      1.76ms    78.79%
"""


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "benchmarks" / "run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules["bench_run"]


def test_h2load_summary_is_parsed(bench):
    res = bench.parse_h2load(H2LOAD_OUTPUT, 2)
    assert res["rps"] == 8064.0
    assert res["requests"] == 16128
    assert res["duration_us"] == 2e6
    assert res["errors"] == {"failed": 1, "errored": 1, "timeout": 0, "status": 1}
    assert res["latency_us"] == {"min": 950.0, "max": 23960.0, "mean": 4910.0}


def test_h2load_without_a_summary_is_an_error(bench):
    with pytest.raises(ValueError, match="no h2load summary"):
        bench.parse_h2load("connect: Connection refused\n", 2)


def test_h2_scenarios_and_command_lines(bench, tmp_path):
    bench.TLS_FILES.update(cert=tmp_path / "c.pem", key=tmp_path / "k.pem")
    h2c, tls = bench.SCENARIOS_BY_NAME["h2c"], bench.SCENARIOS_BY_NAME["h2-tls"]
    assert (h2c.http2, h2c.tls, tls.http2, tls.tls) == (True, False, True, True)
    assert bench.H2_SERVERS == {"ferrule", "granian"}

    ferrule = bench.ferrule_argv(tls, 8443)
    assert "--http2" in ferrule
    assert ferrule[ferrule.index("--certfile") + 1] == str(tmp_path / "c.pem")
    assert "--certfile" not in bench.ferrule_argv(h2c, 8000)
    assert "--http2" not in bench.ferrule_argv(bench.SCENARIOS_BY_NAME["hello"], 8000)

    granian = bench.granian_argv(tls, 8443)
    assert granian[granian.index("--http") + 1] == "2"
    assert granian[granian.index("--ssl-keyfile") + 1] == str(tmp_path / "k.pem")
    hello = bench.granian_argv(bench.SCENARIOS_BY_NAME["hello"], 8000)
    assert hello[hello.index("--http") + 1] == "1"
