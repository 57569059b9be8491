"""The new master's side of the metrics hand-over on USR2 (`ferrule.process._take_metrics`):
the old master's listener is adopted when `--metrics-bind` still names its address, and closed
otherwise (the end-to-end proof is tests/ops/test_usr2_metrics.py)."""

from __future__ import annotations

import os
import socket

import pytest

from ferrule.config import Config
from ferrule.process import ProcessError, _take_metrics


@pytest.fixture
def listener():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    try:
        sock.close()
    except OSError:
        pass


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return f"{host}:{port}"


def test_the_same_address_is_adopted(listener):
    config = Config(metrics_bind=_address(listener))
    taken = _take_metrics(config, f"{listener.fileno()},{_address(listener)}")
    assert taken.metrics_bind == f"fd://{listener.fileno()}"
    os.fstat(listener.fileno())  # still open: the server adopts it


@pytest.mark.parametrize("metrics_bind", ["127.0.0.1:1", None], ids=["moved", "off"])
def test_another_address_or_no_metrics_closes_the_inherited_socket(listener, metrics_bind):
    fd = listener.detach()
    config = Config(metrics_bind=metrics_bind)
    taken = _take_metrics(config, f"{fd},127.0.0.1:9")
    assert taken.metrics_bind == metrics_bind
    with pytest.raises(OSError):
        os.fstat(fd)


def test_nothing_inherited_changes_nothing():
    config = Config(metrics_bind="127.0.0.1:9100")
    assert _take_metrics(config, "") is config


def test_a_garbled_variable_is_an_error():
    with pytest.raises(ProcessError):
        _take_metrics(Config(), "x,127.0.0.1:9100")
