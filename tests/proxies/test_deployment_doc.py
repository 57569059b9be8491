"""docs/deployment.md cannot drift from what the tests run (issue 5).

- Every proxy template of proxy_configs.py appears in the document, rendered with `DOC_VALUES`,
  as the whole content of one fenced block (the tests run the same templates).
- The systemd units parse as unit files; the service's command line parses with ferrule's own
  argument parser, systemd waits longer than ferrule's graceful drain before it kills, and the
  socket unit listens where the service binds.
- The Kubernetes manifest is valid YAML with the structure a Deployment needs; its command line
  parses with ferrule's parser, the probes hit the port ferrule binds, and the grace period
  covers the preStop pause plus the graceful drain.

No server runs here: these checks need neither the proxies nor the extension's network code.
"""

from __future__ import annotations

import configparser
import importlib
import re
import shlex

import proxy_configs as cfg
import pytest
import yaml
from not_wired import NOT_WIRED

from ferrule.cli import build_parser
from ferrule.config import option_spec
from helpers.server import REPO

DOC = REPO / "docs" / "deployment.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)

#: The templates the document shows, each run by the named tests.
DOC_TEMPLATES = {
    "NGINX_PROXY_SITE": "test_nginx.py",
    "NGINX_STREAM_UPLOADS": "test_nginx.py",
    "NGINX_PREFIX_LOCATION": "test_forwarded.py",
    "NGINX_UWSGI_SITE": "test_uwsgi.py",
    "APACHE_PROXY_SITE": "test_apache.py",
    "APACHE_UWSGI_SITE": "test_uwsgi.py",
    "HAPROXY_LB": "test_haproxy.py",
}


def _text() -> str:
    return DOC.read_text()


def _blocks(lang: str | None = None) -> list[str]:
    return [body for kind, body in FENCE.findall(_text()) if lang in (None, kind)]


def _ferrule_args(argv: list[str]):
    """Parses a documented ferrule command line (program name excluded) with ferrule's parser;
    an unknown option or a bad value fails the test."""
    try:
        return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"docs/deployment.md: ferrule rejects the command line {argv}")


@pytest.mark.parametrize("name", sorted(DOC_TEMPLATES))
def test_doc_shows_the_tested_template(name):
    rendered = cfg.render_doc(getattr(cfg, name)).strip("\n")
    blocks = [b.strip("\n") for b in _blocks()]
    assert rendered in blocks, f"docs/deployment.md lacks {name} as tested:\n{rendered}"
    # The template is really run by the tests the table names.
    test_file = DOC.parents[1] / "tests" / "proxies" / DOC_TEMPLATES[name]
    assert f"cfg.{name}" in test_file.read_text()


def test_doc_names_the_proxy_protocol_server_options():
    text = " ".join(DOC.read_text().split())
    for value in cfg.HAPROXY_SEND_PROXY.values():
        if value:
            assert f"`{value}`" in text


def test_doc_example_command_line_parses():
    commands = [b for b in _blocks("sh") if b.startswith("ferrule ")]
    assert commands
    for command in commands:
        _ferrule_args(shlex.split(command)[1:])


def _units() -> list[configparser.ConfigParser]:
    units = []
    for body in _blocks("ini"):
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        parser.optionxform = str  # systemd keys are case-sensitive
        parser.read_string(body)
        units.append(parser)
    return units


def test_systemd_service_unit():
    services = [u for u in _units() if u.has_section("Service")]
    assert len(services) == 1
    unit = services[0]
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["KillSignal"] == "SIGTERM"
    assert service["ExecReload"].endswith("HUP $MAINPID")
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/ferrule")
    args = _ferrule_args(argv[1:])
    assert args.graceful_timeout is not None
    assert float(service["TimeoutStopSec"]) > args.graceful_timeout
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_socket_unit_matches_the_service():
    sockets = [u for u in _units() if u.has_section("Socket")]
    assert len(sockets) == 1
    (service,) = [u for u in _units() if u.has_section("Service")]
    bind = _ferrule_args(shlex.split(service["Service"]["ExecStart"])[1:]).bind
    # The socket listens where the service would bind without it.
    assert [sockets[0]["Socket"]["ListenStream"]] == bind
    assert sockets[0]["Install"]["WantedBy"] == "sockets.target"
    # The escape hatch the text names is an address ferrule accepts.
    option_spec("bind").kind.check(("fd://3",))


def test_kubernetes_deployment_manifest():
    docs = [d for body in _blocks("yaml") for d in yaml.safe_load_all(body)]
    assert len(docs) == 1
    dep = docs[0]
    assert dep["apiVersion"] == "apps/v1"
    assert dep["kind"] == "Deployment"
    assert dep["metadata"]["name"]
    spec = dep["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["ferrule"]
    assert all(isinstance(a, str) for a in container["args"])
    args = _ferrule_args(container["args"])
    (bind,) = args.bind
    host, port = bind.rsplit(":", 1)
    assert host == "0.0.0.0"  # reachable from the kubelet and the Service, not loopback only
    (port_spec,) = container["ports"]
    assert port_spec["containerPort"] == int(port)
    for probe in ("readinessProbe", "livenessProbe"):
        check = container[probe]["httpGet"]
        assert check["port"] in (port_spec["name"], int(port))
        assert check["path"].startswith("/")
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + args.graceful_timeout


def test_status_table_follows_the_xfail_marks():
    """A row says "not wired yet" and "(xfail)" exactly while its test module carries the
    NOT_WIRED mark: removing the mark when the wiring lands forces the document to follow."""
    rows = re.findall(
        r"^\| (.+?) \| (.+?) \| `tests/proxies/(test_\w+)\.py`(.*?)\|$", _text(), re.MULTILINE
    )
    assert len(rows) >= 7
    for what, state, module, rest in rows:
        marks = getattr(importlib.import_module(module), "pytestmark", [])
        marks = marks if isinstance(marks, list) else [marks]
        marked = NOT_WIRED in marks
        assert (state == "not wired yet") == marked, (what, state, module)
        assert ("(xfail)" in rest) == marked, (what, rest, module)
