import test_haproxy as th
import pytest

@pytest.mark.timeout(120)
@pytest.mark.parametrize("rep", range(8))
def test_x(backend, haproxy, rep):
    th.test_rolling_restart_behind_haproxy_loses_no_request(backend, haproxy)
