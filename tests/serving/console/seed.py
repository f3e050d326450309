"""The console tests' shop: catalogue, customers and their events in the store, the shipped
segment files, then one refresh (RFM groups, clusters of the served model, segment members)."""

from __future__ import annotations

from pathlib import Path

from recsys.segments.clusters import resolve_bundle
from recsys.segments.refresh import refresh
from recsys.segments.service import SegmentService
from recsys.store import Store
from recsys.store.bulk import import_events, import_items, import_users
from recsys_cli.segments import load_segment_file

ROOT = Path(__file__).resolve().parents[3]
XSS = "<script>window.__xss = 1</script>"


def seed_shop(store: Store, shop_dir: Path, bundle_dir: Path, var_dir: Path) -> None:
    import_items(store, shop_dir / "items.parquet", progress=False)
    import_users(store, shop_dir / "users.parquet", progress=False)
    import_events(store, shop_dir / "events.parquet", progress=False)
    service = SegmentService(store)
    for file in sorted((ROOT / "configs" / "segments").glob("*.yaml")):
        load_segment_file(service, file)
    bundle, version = resolve_bundle(str(bundle_dir), "", str(var_dir))
    refresh(store, bundle=bundle, model_version=version, k=4, device="cpu")


def seed_hostile_customer(store: Store) -> str:
    """A customer whose attribute holds markup: the page must show it as text."""
    store.customers.put("xss-user", {"email": "xss@example.com", "attributes": {"note": XSS}})
    return "xss-user"
