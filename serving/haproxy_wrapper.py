"""The HAProxy that Ray Serve runs for ``recsys serve``: Ray's own, with one line of its config
changed.

Ray's HAProxy ingress sends a request that matches no application to a backend that answers
``404 Path not found``. Under ``recsys serve`` the one application holds ``/``, so that backend
is only reached before any application is deployed: in the seconds between HAProxy opening the
port and the start-up placeholder (:mod:`serving.starting`) taking the route. A client that takes
404 as final would drop its request there. Ray's template hard-codes the 404 and has no setting
for it, but it runs whatever ``RAY_SERVE_HAPROXY_BINARY_PATH`` names: :func:`install` writes a
small executable there that rewrites that one line of the config Ray generated to ``503`` with
``Retry-After`` (what the placeholder answers) and then execs the real HAProxy with the same
arguments. Everything else (routing, reloads, health checks) is Ray's.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

RETRY_AFTER_S = 2  # as serving.starting's placeholder (not imported: it imports Ray, which
# must not read its RAY_SERVE_* settings before recsys serve has set them)
NOT_FOUND = re.compile(
    r"^(?P<indent>[ \t]*)http-request return status 404 content-type text/plain "
    r'lf-string "Path .*$',
    re.MULTILINE,
)
"""The line of Ray's ``default_backend`` (``ray/serve/_private/haproxy_templates.py``)."""
STARTING = (
    f"http-request return status 503 content-type text/plain hdr Retry-After {RETRY_AFTER_S} "
    'string "the service is starting: no application is deployed yet"'
)

_SCRIPT = '''#!{python} -I
"""Run by Ray Serve as its HAProxy binary (see serving/haproxy_wrapper.py in recsys)."""
import os
import re
import sys

args = sys.argv[1:]
for flag, path in zip(args, args[1:]):
    if flag == "-f" and os.path.isfile(path):
        with open(path) as config:
            text = config.read()
        fixed = re.sub({pattern!r}, lambda m: m.group("indent") + {starting!r}, text, flags=re.M)
        if fixed != text:
            with open(path + ".recsys", "w") as config:
                config.write(fixed)
            os.replace(path + ".recsys", path)
os.execv({real!r}, [{real!r}, *args])
'''


def install(folder: Path, real_binary: str) -> str:
    """Write the wrapper for ``real_binary`` into ``folder``; returns the binary Ray should
    run: the wrapper, or ``real_binary`` itself where ``folder`` cannot hold executables (a
    ``noexec`` mount), with Ray's 404 back for that moment."""
    script = _SCRIPT.format(
        python=sys.executable, pattern=NOT_FOUND.pattern, starting=STARTING, real=real_binary
    )
    path = Path(folder) / "haproxy"
    path.write_text(script)
    path.chmod(0o755)
    if not os.access(path, os.X_OK):
        logger.warning("%s cannot be executed (noexec?); HAProxy runs unwrapped and answers "
                       "404 until the first application is deployed", path)  # fmt: skip
        return real_binary
    return str(path)
