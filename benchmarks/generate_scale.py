"""Scale check of `recsys generate`: wall time, peak memory and output size at a given size.

Runs the generator as a subprocess into a temporary directory and prints one JSON line:
``{"users", "items", "events_per_user", "events", "wall_seconds", "peak_rss_mib", "output_mib",
...}``. Peak RSS is the child's maximum resident set size (``RUSAGE_CHILDREN``).

    python benchmarks/generate_scale.py                       # 1M users, 100k items, 20 events/user
    python benchmarks/generate_scale.py --users 50000 --items 5000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--events-per-user", type=float, default=20.0)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp-dir", default=None, help="Where the temporary shop is written.")
    return parser.parse_args()


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    """Run the generator once and print the measurements as one JSON line."""
    args = _parse()
    with tempfile.TemporaryDirectory(prefix="recsys-generate-", dir=args.tmp_dir) as tmp:
        out = Path(tmp) / "shop"
        command = [
            sys.executable,
            "-m",
            "recsys_cli.main",
            "generate",
            "--users", str(args.users),
            "--items", str(args.items),
            "--events-per-user", str(args.events_per_user),
            "--segments", str(args.segments),
            "--seed", str(args.seed),
            "--out", str(out),
            "--json",
        ]  # fmt: skip
        env = dict(os.environ, RECSYS_LOG_LEVEL=os.environ.get("RECSYS_LOG_LEVEL", "WARNING"))
        started = time.perf_counter()
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            sys.stderr.write(done.stderr)
            raise SystemExit(f"generator failed with exit status {done.returncode}")
        summary = json.loads(done.stdout.strip().splitlines()[-1])
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
        files = {
            str(f.relative_to(out)): round(f.stat().st_size / 2**20, 2)
            for f in sorted(out.rglob("*.parquet"))
        }
        counts = summary["counts"]
        print(
            json.dumps(
                {
                    "benchmark": "generate_scale",
                    "users": args.users,
                    "items": args.items,
                    "events_per_user": args.events_per_user,
                    "events": counts["events"],
                    "sessions": counts["sessions"],
                    "purchases": counts["events_purchase"],
                    "wall_seconds": round(wall, 2),
                    "generator_seconds": summary["wall_seconds"],
                    "events_per_second": round(counts["events"] / wall),
                    "peak_rss_mib": round(peak_kib / 1024, 1),
                    "output_mib": round(_size(out) / 2**20, 1),
                    "files_mib": files,
                    "cpu_count": os.cpu_count(),
                }
            )
        )


if __name__ == "__main__":
    main()
