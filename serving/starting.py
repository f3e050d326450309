"""The placeholder application ``recsys serve`` deploys first, at the real application's route.

Ray's proxy (and its HAProxy ingress) answers ``404 Path not found`` for a route that no
application holds yet, and a client that takes 404 as final drops its request. From the moment
the port opens until the real application is deployed over it (same application name, same
route prefix), this placeholder answers every path with ``503`` and ``Retry-After``;
``/healthz`` answers 200 (the process is alive, not ready). It imports nothing of ours, so its
replica is up within a second of its worker process.
"""

from __future__ import annotations

import json

from ray import serve
from ray.serve import Application
from ray.serve.schema import LoggingConfig

RETRY_AFTER_S = 2
APP_NAME = "recsys"


@serve.deployment(
    name="starting",
    num_replicas=1,
    ray_actor_options={"num_cpus": 0.01},
    logging_config=LoggingConfig(enable_access_log=False, log_level="WARNING"),
)
class StartingApp:
    """A bare ASGI app: 503 + Retry-After everywhere, 200 on /healthz."""

    async def __call__(self, request):
        from starlette.responses import Response

        if request.url.path == "/healthz":
            status, body = 200, {"status": "starting"}
        else:
            status, body = 503, {"detail": "the service is starting; retry shortly"}
        return Response(
            json.dumps(body),
            status_code=status,
            media_type="application/json",
            headers={"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None,
        )


def starting_app() -> Application:
    """The placeholder, to be deployed as ``APP_NAME`` at ``/`` before the real application."""
    return StartingApp.bind()
