"""Page timings of the web console (``/console``) under load, with the project's load tool.

Every console page is fetched by closed-loop clients (``loadgen.LoadGenerator``; the session
cookie carries the API key) at each concurrency level, and its latency percentiles are printed
as a table and, last, as one JSON object. The bar of the console: every page's p95 <= 300 ms on
the sample shop (``make run``). Pages that take ids get a random sample customer or item per
request, and the largest segment and the first campaign of the store::

    make run          # in another terminal: the sample shop on 127.0.0.1:8000
    python benchmarks/console_pages.py --key "$(cat var/admin.key)"

Needs an admin key so that the Models page and the admin-only parts render as for an operator
(a read key measures the read-only variant of each page).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from loadgen import LoadGenerator  # noqa: E402

BAR_P95_MS = 300.0


def _get(client: httpx.Client, path: str) -> dict:
    response = client.get(path)
    if response.status_code != 200:
        raise SystemExit(f"GET {path}: {response.status_code} {response.text[:300]}")
    return response.json()


def discover(base_url: str, key: str, max_ids: int) -> tuple[dict[str, str], list, list]:
    """The pages to time, and sample customer and item ids, read from the service's API."""
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                      timeout=60) as client:  # fmt: skip
        segments = _get(client, "/v1/segments")["segments"]
        campaigns = _get(client, "/v1/campaigns")["campaigns"]
        if not segments:
            raise SystemExit("the store has no segments: run `make run` (it loads them) first")
        biggest = max(segments, key=lambda s: s["size"])
        users, cursor = [], None
        while len(users) < max_ids:  # customers with a profile: members of the biggest segment
            query = f"?limit=1000{'&cursor=' + quote(cursor) if cursor else ''}"
            page = _get(client, f"/v1/segments/{quote(biggest['id'])}/members{query}")
            users += [m["user_id"] for m in page["members"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        if not users:
            raise SystemExit(f"segment {biggest['id']} has no members to sample customers from")
        items = []
        for user in users[:20]:
            answer = _get(client, f"/v1/users/{quote(user)}/recommendations?k=10")
            items += [row["item_id"] for row in answer["items"]]
    pages = {
        "overview": "/console/",
        "customer search": "/console/customers?q={user_prefix}",
        "customer": "/console/customers/{user}",
        "item": "/console/items/{item}",
        "segments": "/console/segments",
        "segment": f"/console/segments/{quote(biggest['id'])}",
        "segment editor": "/console/segments/new",
        "campaigns": "/console/campaigns",
        "models": "/console/models",
    }
    if campaigns:
        pages["campaign"] = f"/console/campaigns/{quote(campaigns[0]['id'])}"
    return pages, users[:max_ids], sorted(set(items))


def main(argv=None) -> int:
    args = parse_args(argv)
    key = args.key or os.environ.get("RECSYS_KEY")
    if not key and Path("var/admin.key").exists():
        key = Path("var/admin.key").read_text().strip()
    if not key:
        raise SystemExit("no API key: pass --key (an admin key; `make run` keeps var/admin.key)")
    pages, users, items = discover(args.base_url, key, args.max_users)
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"console pages: {len(pages)} pages, {args.requests} requests per page and level "
          f"{levels}, {len(users)} customers, {len(items)} items, against {args.base_url}",
          file=sys.stderr)  # fmt: skip
    rows = []
    started = time.perf_counter()
    with LoadGenerator(args.base_url, key, users, items, clients=args.clients,
                       options={"most_workers": max(levels)}, timeout=60) as load:  # fmt: skip
        for path in pages.values():  # warm-up: caches (e.g. the clusters' projection), pools
            load.phase(f"page:{path}", 1, requests=args.warmup)
        for concurrency in levels:
            for name, path in pages.items():
                summary = load.phase(f"page:{path}", concurrency, requests=args.requests).summary()
                summary |= {"page": name, "path": path}
                rows.append(summary)
                print(f"  {name:<16} c={concurrency:<2} p50 {summary['p50_ms']:>7} ms "
                      f"p95 {summary['p95_ms']:>7} ms p99 {summary['p99_ms']:>7} ms "
                      f"{summary['rps']:>6} req/s errors {summary['errors']}",
                      file=sys.stderr)  # fmt: skip
    worst = max(rows, key=lambda r: r["p95_ms"] or 0)
    errors = sum(r["errors"] for r in rows)
    print(f"\n{'page':<16} {'c':>3} {'requests':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'req/s':>7} {'errors':>6}")  # fmt: skip
    for r in rows:
        print(f"{r['page']:<16} {r['concurrency']:>3} {r['requests']:>8} {r['p50_ms']:>8} "
              f"{r['p95_ms']:>8} {r['p99_ms']:>8} {r['rps']:>7} {r['errors']:>6}")  # fmt: skip
    met = worst["p95_ms"] <= BAR_P95_MS and errors == 0
    print(f"\nslowest page p95: {worst['page']} {worst['p95_ms']} ms at concurrency "
          f"{worst['concurrency']} (bar <= {BAR_P95_MS:g} ms); errors {errors}; "
          f"{'MET' if met else 'NOT MET'}; load average {os.getloadavg()[0]:.2f}; "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    keep = ("page", "path", "concurrency", "requests", "errors", "p50_ms", "p95_ms", "p99_ms",
            "rps", "error_samples")  # fmt: skip
    print(json.dumps({"pages": [{k: r[k] for k in keep if k in r} for r in rows],
                      "slowest_p95_ms": worst["p95_ms"], "bar_p95_ms": BAR_P95_MS,
                      "errors": errors, "met": met}))  # fmt: skip
    return 0 if met else 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000", help="The service.")
    parser.add_argument("--key", help="An admin API key (default $RECSYS_KEY, var/admin.key).")
    parser.add_argument("--requests", type=int, default=100, help="Requests per page and level.")
    parser.add_argument("--warmup", type=int, default=5, help="Warm-up requests per page.")
    parser.add_argument("--concurrency", default="1,4", help="Levels, comma-separated.")
    parser.add_argument("--clients", type=int, default=1, help="Client processes.")
    parser.add_argument("--max-users", type=int, default=500, help="Customers to sample.")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
