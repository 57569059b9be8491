import proxy_configs as cfg
import test_haproxy as th
import pytest

@pytest.mark.timeout(120)
@pytest.mark.parametrize("variant", ["none", "connonly"])
def test_x(backend, haproxy, monkeypatch, variant):
    repl = "" if variant == "none" else "retry-on conn-failure"
    monkeypatch.setattr(cfg, "HAPROXY_LB", cfg.HAPROXY_LB.replace("retry-on conn-failure empty-response", repl))
    th.test_rolling_restart_behind_haproxy_loses_no_request(backend, haproxy)
