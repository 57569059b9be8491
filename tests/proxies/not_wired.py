"""The mark for proxy tests of issue-5 features the server does not serve yet.

The tests run against the options issue 5 names (`--protocol uwsgi`, `--bind unix:PATH`,
`--proxy-protocol`, `--forwarded-allow-ips`, ...). Today ferrule refuses `unix:` binds and
accepts the others only as gunicorn flags it warns about and ignores, so each test fails on what
it checks (a refusal test first checks an allowed control, so it cannot pass by accident). With
`strict=True`, a test that starts passing fails the run until its mark is removed as the wiring
lands.
"""

import pytest

NOT_WIRED = pytest.mark.xfail(reason="not wired yet: issue 5", strict=True)
