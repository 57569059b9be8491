"""The proxy configurations the tests run, and the ones docs/deployment.md shows: one source.

Each `*_SITE`/`HAPROXY_LB` template is the part of a configuration a deployment writes (upstream,
server/location, ProxyPass, frontend/backend). A test wraps it in a harness (`nginx_conf`,
`apache_conf`, `haproxy_conf`: pid file, logs and temp dirs in the test's directory, loopback
port) and runs it; the documentation shows the same template rendered with `DOC_VALUES`, and
tests/proxies/test_deployment_doc.py checks the document still contains every rendering, so the
documentation cannot drift from what was tested.

Placeholders are `@NAME@` (nginx and HAProxy use `$` and `{}` themselves). A line holding only a
placeholder whose value is empty disappears; a multi-line value is indented like its line.
"""

from __future__ import annotations

import grp
import os
import pwd
import re

_PLACEHOLDER = re.compile(r"@([A-Z_]+)@")

# -- nginx ------------------------------------------------------------------------------------

#: nginx in front of ferrule over HTTP/1.1 with a keep-alive upstream pool. `@BUFFERING@` is
#: empty (nginx buffers each request body before passing it on, the default) or
#: `NGINX_STREAM_UPLOADS`.
NGINX_PROXY_SITE = """\
upstream ferrule {
    server @UPSTREAM@;
    # Keep idle connections to ferrule for reuse, and drop them before ferrule's
    # --keep-alive (5 s by default) does, so nginx never reuses a closing connection.
    keepalive 16;
    keepalive_timeout 4s;
}

server {
    listen @LISTEN@;
    client_max_body_size 64m;

    location / {
        proxy_pass http://ferrule;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        @BUFFERING@
    }
    @EXTRA_LOCATIONS@
}
"""

#: Passes request bodies on as they arrive (ferrule streams bodies above --max-buffered-body
#: to the app), instead of nginx spooling each one to a temp file first.
NGINX_STREAM_UPLOADS = "proxy_request_buffering off;"

#: The app mounted under /app/: nginx strips the prefix and tells ferrule with
#: X-Forwarded-Prefix (SCRIPT_NAME, once trusted forwarding is wired: issue 5).
NGINX_PREFIX_LOCATION = """\
location /app/ {
    proxy_pass http://ferrule/;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-Prefix /app;
}"""

#: nginx speaking the uwsgi protocol to ferrule (`--protocol uwsgi`). The parameters are those
#: of nginx's stock `uwsgi_params` file, written out so the snippet stands alone.
NGINX_UWSGI_SITE = """\
server {
    listen @LISTEN@;
    client_max_body_size 64m;

    location / {
        uwsgi_pass @UPSTREAM@;
        uwsgi_param QUERY_STRING $query_string;
        uwsgi_param REQUEST_METHOD $request_method;
        uwsgi_param CONTENT_TYPE $content_type;
        uwsgi_param CONTENT_LENGTH $content_length;
        uwsgi_param REQUEST_URI $request_uri;
        uwsgi_param PATH_INFO $document_uri;
        uwsgi_param DOCUMENT_ROOT $document_root;
        uwsgi_param SERVER_PROTOCOL $server_protocol;
        uwsgi_param REQUEST_SCHEME $scheme;
        uwsgi_param HTTPS $https if_not_empty;
        uwsgi_param REMOTE_ADDR $remote_addr;
        uwsgi_param REMOTE_PORT $remote_port;
        uwsgi_param SERVER_PORT $server_port;
        uwsgi_param SERVER_NAME $server_name;
    }
}
"""

_NGINX_HARNESS = """\
worker_processes 1;
@USER@
pid @PREFIX@/nginx.pid;
error_log @PREFIX@/error.log warn;

events {
    worker_connections 256;
}

http {
    access_log @PREFIX@/access.log;
    client_body_temp_path @PREFIX@/client_body;
    proxy_temp_path @PREFIX@/proxy;
    uwsgi_temp_path @PREFIX@/uwsgi;
    fastcgi_temp_path @PREFIX@/fastcgi;
    scgi_temp_path @PREFIX@/scgi;

    @SITE@
}
"""

# -- Apache httpd -----------------------------------------------------------------------------

#: Apache httpd with mod_proxy + mod_proxy_http. mod_proxy adds X-Forwarded-For/-Host/-Server
#: itself; `ttl` drops pooled connections before ferrule's --keep-alive (5 s) closes them.
APACHE_PROXY_SITE = """\
ProxyPreserveHost On
ProxyPass "/" "http://@UPSTREAM@/" ttl=4
ProxyPassReverse "/" "http://@UPSTREAM@/"
"""

#: Apache httpd with mod_proxy + mod_proxy_uwsgi, ferrule started with `--protocol uwsgi`.
APACHE_UWSGI_SITE = """\
ProxyPass "/" "uwsgi://@UPSTREAM@/"
"""

#: The modules the sites above need (Debian names; `a2enmod proxy_http proxy_uwsgi` there).
APACHE_MODULES = (
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("proxy_module", "mod_proxy.so"),
    ("proxy_http_module", "mod_proxy_http.so"),
    ("proxy_uwsgi_module", "mod_proxy_uwsgi.so"),
)

_APACHE_HARNESS = """\
ServerRoot "@ROOT@"
ServerName 127.0.0.1
Listen 127.0.0.1:@PORT@
PidFile "@ROOT@/httpd.pid"
ErrorLog "@ROOT@/error.log"
LogLevel warn
DefaultRuntimeDir "@ROOT@/run"
Mutex file:@ROOT@/run default
@MODULES@
@USER@
StartServers 1
ServerLimit 1
ThreadsPerChild 32
MaxRequestWorkers 32
Timeout 60

@SITE@
"""

# -- HAProxy ----------------------------------------------------------------------------------

#: HAProxy balancing across ferrule instances. Why the retry settings (see docs/deployment.md):
#: when an instance stops gracefully, ferrule closes its listener and its idle keep-alive
#: connections at once and answers in-flight requests with `Connection: close`. HAProxy may then
#: (a) connect to the stopped instance before a health check marks it down: `conn-failure`;
#: (b) send a request over a pooled idle connection ferrule just closed: `empty-response`.
#: Both are retried (`retries 3`), and `option redispatch 1` sends every retry to another
#: server. The health check (`/healthz`, every second) takes the instance out of rotation and
#: brings the restarted one back.
HAPROXY_LB = """\
defaults
    mode http
    log global
    option httplog
    option forwardfor
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch 1
    retry-on conn-failure empty-response

frontend www
    bind @LISTEN@
    default_backend ferrule

backend ferrule
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server check inter 1s fall 2 rise 1 @SEND_PROXY@
    @SERVERS@
"""

#: `@SEND_PROXY@` values: HAProxy prepends a PROXY header (and its checks do too) for ferrule's
#: `--proxy-protocol v1|v2`.
HAPROXY_SEND_PROXY = {
    "off": "",
    "v1": "send-proxy check-send-proxy",
    "v2": "send-proxy-v2 check-send-proxy",
}

_HAPROXY_HARNESS = """\
global
    log stderr format raw local0 info
    maxconn 512

@SITE@
"""

#: The values docs/deployment.md renders the templates with.
DOC_VALUES = {
    "LISTEN": "*:80",
    "UPSTREAM": "127.0.0.1:8000",
    "BUFFERING": "",
    "EXTRA_LOCATIONS": "",
    "SEND_PROXY": "",
    "SERVERS": "server app1 127.0.0.1:8001\nserver app2 127.0.0.1:8002",
}


def render(template: str, **values: str) -> str:
    """Fills every `@NAME@` of `template` (a missing value is an error)."""
    out = []
    for line in template.split("\n"):
        m = _PLACEHOLDER.fullmatch(line.strip())
        if m is not None:
            value = values[m.group(1)]
            if not value:
                continue
            indent = line[: len(line) - len(line.lstrip())]
            out.extend(indent + v if v else v for v in value.split("\n"))
            continue
        filled = _PLACEHOLDER.sub(lambda m: values[m.group(1)], line)
        out.append(filled.rstrip())
    return "\n".join(out)


def render_doc(template: str) -> str:
    """`template` as docs/deployment.md shows it."""
    return render(template, **DOC_VALUES)


def haproxy_servers(addresses: list[str]) -> str:
    return "\n".join(f"server app{i + 1} {addr}" for i, addr in enumerate(addresses))


def _exists(lookup, name: str) -> bool:
    try:
        lookup(name)
    except KeyError:
        return False
    return True


def _run_as_root_user() -> str:
    return "root" if os.geteuid() == 0 else ""


def nginx_conf(site: str, prefix: str) -> str:
    # As root, nginx's workers would run as `nobody`, which cannot enter the test's private
    # temp directory (it writes request bodies and proxied responses there).
    user = "user root;" if _run_as_root_user() else ""
    return render(_NGINX_HARNESS, PREFIX=prefix, USER=user, SITE=site)


def apache_conf(site: str, root: str, port: int, modules_dir: str) -> str:
    modules = "\n".join(f"LoadModule {name} {modules_dir}/{so}" for name, so in APACHE_MODULES)
    # Apache refuses to run its children as root: started as root, they become an unprivileged
    # user (the proxy sites read no file of the test, so its private directory is no obstacle).
    user = ""
    if _run_as_root_user():
        name = next(n for n in ("www-data", "apache", "nobody") if _exists(pwd.getpwnam, n))
        group = next(g for g in (name, "nogroup", "nobody") if _exists(grp.getgrnam, g))
        user = f"User {name}\nGroup {group}"
    return render(_APACHE_HARNESS, ROOT=root, PORT=str(port), MODULES=modules, USER=user, SITE=site)


def haproxy_conf(site: str) -> str:
    return render(_HAPROXY_HARNESS, SITE=site)
