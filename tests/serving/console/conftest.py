"""The console in a real browser: the real app (real store, real model bundle) served by uvicorn
on a free port, driven by Playwright in Debian's Chromium (/usr/bin/chromium, no download).

The browser tests skip, with the reason, only where Chromium or Playwright is missing;
``make test`` installs both where it can. Screenshots go to ``var/test-artefacts/console``
(``RECSYS_TEST_ARTEFACTS`` overrides the folder).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from recsys.store import Role, Store
from serving.app import create_app
from serving.model_client import LocalModelClient
from serving.model_server import ModelServer
from serving.settings import Settings
from tests.serving.console.seed import ROOT, seed_hostile_customer, seed_shop
from tests.serving.console.seed_campaigns import seed_campaigns

CHROMIUM = os.environ.get("RECSYS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [  # as root, in a machine with no outside network
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTEFACTS = Path(os.environ.get("RECSYS_TEST_ARTEFACTS", ROOT / "var" / "test-artefacts"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveConsole:
    """A served app with one key per role and the store it writes to."""

    def __init__(self, url: str, keys: dict[str, str], store: Store, settings: Settings):
        self.url, self.keys, self.store, self.settings = url, keys, store, settings


@contextmanager
def serve_console(settings: Settings, store: Store, name: str) -> Iterator[LiveConsole]:
    """The real app over ``store`` served by uvicorn on a free port, one key per role; the
    server, the model and the store are closed afterwards."""
    keys = {role.value: store.keys.create(role, f"console {role.value}")[0] for role in Role}
    server_model = ModelServer(settings, store.erased_hashes)
    app = create_app(settings, store, LocalModelClient(server_model))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError(f"the console's test server {name} did not start")
        time.sleep(0.05)
    try:
        yield LiveConsole(f"http://127.0.0.1:{port}", keys, store, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        server_model.close()
        store.close()


@pytest.fixture(scope="package")
def live(shop_dir, bundle_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("console")
    settings = Settings(
        database_url=f"sqlite:///{tmp / 'recsys.db'}",
        model_uri=str(bundle_dir),
        var_dir=str(tmp / "var"),
        device="cpu",
        model_poll_seconds=0,
    )
    store = Store.open(settings.database_url)
    seed_shop(store, shop_dir, bundle_dir, tmp / "var")
    seed_hostile_customer(store)
    seed_campaigns(store, settings)
    with serve_console(settings, store, "console-server") as live:
        yield live


@pytest.fixture(scope="package")
def browser():
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install playwright)")
    with sync_playwright() as playwright:
        executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class ConsolePage:
    """One browser tab on the console, recording console errors and CSP violations."""

    def __init__(self, page, live: LiveConsole) -> None:
        self.page, self.live = page, live
        self.errors: list[str] = []
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("response", lambda r: r.status >= 400 and self.errors.append(f"{r.status} {r.url}"))

    def goto(self, path: str):
        return self.page.goto(self.live.url + "/console" + path)

    def sign_in(self, role: str = "marketer") -> None:
        self.goto("/login")
        self.page.fill("#api_key", self.live.keys[role])
        self.page.click("#login button[type=submit]")
        self.page.wait_for_url(f"{self.live.url}/console/")

    def screenshot(self, name: str) -> Path:
        ARTEFACTS.joinpath("console").mkdir(parents=True, exist_ok=True)
        path = ARTEFACTS / "console" / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def tab(browser, live):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield ConsolePage(page, live)
    context.close()
