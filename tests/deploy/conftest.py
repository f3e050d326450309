"""The real app over a real store and bundle (the fixtures of tests/serving, shared here)."""

from tests.serving.conftest import (  # noqa: F401 - pytest finds fixtures by name
    bundle_dir,
    client,
    keys,
    server,
    settings,
    shop_dir,
    store,
)
