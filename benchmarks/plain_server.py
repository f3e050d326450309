"""The online API without Ray: the same FastAPI app and engine in one plain uvicorn process.

``benchmarks/load.py --compare-plain`` (and ``--serve-plain``) runs this next to ``recsys serve``
so that the cost of Ray Serve's hops is a measured number. It reads the same ``RECSYS_*``
settings as ``recsys serve`` (model URI, store, MLflow, var dir, admin key)::

    RECSYS_ADMIN_KEY=rk_... python benchmarks/plain_server.py --port 8766

:func:`build_app` is the one place that knows how the service's parts fit together outside Ray.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path

if importlib.util.find_spec("recsys") is None:  # a bare checkout: run from the repository
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_app(**overrides):
    """The service's FastAPI app over a local engine: (app, store); close the store after use.

    ``overrides`` are ``serving.settings.Settings`` fields; ``RECSYS_*`` variables fill the rest,
    as for ``recsys serve``. The admin key, when set, is registered in the store.
    """
    from recsys.store import Store
    from serving.app import create_app
    from serving.model_client import LocalModelClient
    from serving.model_server import ModelServer
    from serving.settings import Settings, resolved

    settings = resolved(Settings(**overrides))
    store = Store.open(settings.database_url)
    try:
        if settings.admin_key:
            store.keys.ensure_admin(settings.admin_key.get_secret_value())
        server = ModelServer(settings, store.erased_hashes)
        return create_app(settings, store, LocalModelClient(server)), store
    except BaseException:
        store.close()
        raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    import uvicorn

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    app, store = build_app(host=args.host, port=args.port)
    try:
        # one process, one event loop: what a single Ray Serve replica pair replaces
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
