"""What ``load.py`` prints: the machine, the per-phase table, one run's summary and the
Ray Serve vs plain process comparison."""

from __future__ import annotations

import os
import platform

BAR_P99_RATIO = 3.0  # recommendations p99 <= 3 x healthz p99 (same run, same server)
BAR_THROUGHPUT = 0.6  # Ray Serve recommendations/s >= 0.6 x the plain process (issue 15)
BAR_P99_OVER_PLAIN = 1.5  # and its p99 <= 1.5 x the plain process's


def machine() -> dict:
    info = {"cpus": os.cpu_count(), "python": platform.python_version()}
    if hasattr(os, "getloadavg"):
        info["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    return info


def cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds used so far by every process (empty without psutil)."""
    try:
        import psutil
    except ImportError:
        return {}
    out = {}
    for proc in psutil.process_iter(["name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is not None:
            out[proc.pid] = (proc.info["name"], times.user + times.system)
    return out


def others(before: dict, after: dict, exclude: set[int], seconds: float) -> list[str]:
    """Processes outside this benchmark and the service that used CPU during the run."""
    used = []
    for pid, (name, total) in after.items():
        if pid in exclude:
            continue
        spent = total - before.get(pid, (name, 0.0))[1]
        if spent / seconds >= 0.05:
            used.append((spent, f"{name}({pid}) {spent / seconds:.0%} of a core"))
    return [text for _, text in sorted(used, reverse=True)]


def table(phases: list[dict], title: str = "") -> str:
    head = (f"{'endpoint':<16}{'conc':>5}{'requests':>10}{'req/s':>9}{'p50 ms':>9}"
            f"{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'app ms':>9}{'srv cpu':>9}"
            f"{'client':>8}{'errors':>8}")  # fmt: skip
    lines = [title, head, "-" * len(head)] if title else [head, "-" * len(head)]
    for p in phases:
        rate = f"{p['rps']:.0f}" if p["rps"] is not None else "-"
        lines.append(
            f"{p['endpoint']:<16}{p['concurrency']:>5}{p['requests']:>10}{rate:>9}"
            f"{p['p50_ms'] or 0:>9.2f}{p['p90_ms'] or 0:>9.2f}{p['p99_ms'] or 0:>9.2f}"
            f"{p['max_ms'] or 0:>9.2f}{p['inside_app_mean_ms'] or 0:>9.2f}"
            f"{p['server_cpu_ms_per_request'] or 0:>9.2f}"
            f"{p['client_busiest_core_share'] or 0:>8.0%}{p['errors']:>8}"
        )
        if p["endpoint"] == "events" and p["events_per_s"] is not None:
            per_batch = p["events"] // max(1, p["requests"] - p["errors"])
            lines[-1] += f"   ({p['events_per_s']:.0f} events/s, {per_batch} per request)"
    lines.append("app ms: mean time inside the API app (its /metrics); srv cpu: server CPU ms per")
    lines.append(
        "request (all its processes); client: busiest load-generator process's core share."
    )
    return "\n".join(lines)


def _find(phases: list[dict], endpoint: str, concurrency: int) -> dict | None:
    return next(
        (p for p in phases if p["endpoint"] == endpoint and p["concurrency"] == concurrency), None
    )


def bar_level(levels: list[int]) -> int:
    return 8 if 8 in levels else levels[len(levels) // 2]


def summarise(phases: list[dict], levels: list[int], base_url: str, settings: dict,
              host: dict) -> dict:  # fmt: skip
    """One server's run: its phases and the recommendations-vs-healthz p99 bar."""

    def p99(endpoint: str, concurrency: int):
        found = _find(phases, endpoint, concurrency)
        return found["p99_ms"] if found else None

    level = bar_level(levels)
    ratios = {
        str(c): round(p99("recommendations", c) / p99("healthz", c), 2)
        for c in levels
        if p99("healthz", c) and p99("recommendations", c) is not None
    }
    errors = sum(p["errors"] for p in phases)
    ratio = ratios.get(str(level))
    events = next((p for p in phases if p["endpoint"] == "events"), None)
    return {
        "base_url": base_url,
        "phases": phases,
        "p99_ratio_recommendations_over_healthz": ratios,
        "bar": {
            "concurrency": level,
            "ratio": ratio,
            "limit": BAR_P99_RATIO,
            "aim": 2.0,
            "errors": errors,
            "met": ratio is not None and ratio <= BAR_P99_RATIO and errors == 0,
        },
        "events_per_s": events["events_per_s"] if events else None,
        "errors": errors,
        "settings": settings,
        "machine": host,
    }


FIGURES = ("rps", "p50_ms", "p99_ms", "errors", "server_cpu_ms_per_request",
           "inside_app_mean_ms", "client_busiest_core_share")  # fmt: skip


def _figures(result: dict) -> dict:
    """endpoint -> "c<concurrency>" -> the figures compared."""
    out: dict[str, dict] = {}
    for p in result["phases"]:
        row = {name: p.get(name) for name in FIGURES}
        if p["endpoint"] == "events":
            row["events_per_s"] = p["events_per_s"]
        if p.get("error_samples"):
            row["error_samples"] = p["error_samples"]
        out.setdefault(p["endpoint"], {})[f"c{p['concurrency']}"] = row
    return out


def compare(ray: dict, plain: dict, levels: list[int], ready: dict) -> dict:
    """The Ray Serve vs plain process comparison (printed last by ``--compare-plain``)."""
    ray_fig, plain_fig = _figures(ray), _figures(plain)
    ratios: dict[str, dict] = {}
    for endpoint, levels_of in ray_fig.items():
        for level, r in levels_of.items():
            p = plain_fig.get(endpoint, {}).get(level)
            if not p:
                continue
            ratios.setdefault(endpoint, {})[level] = {
                "rps": round(r["rps"] / p["rps"], 3) if r["rps"] and p["rps"] else None,
                "p99": round(r["p99_ms"] / p["p99_ms"], 3) if r["p99_ms"] and p["p99_ms"] else None,
            }
    level = f"c{bar_level(levels)}"
    at = ratios.get("recommendations", {}).get(level, {})
    errors = {"ray": ray["errors"], "plain": plain["errors"]}
    met = (
        at.get("rps") is not None
        and at["rps"] >= BAR_THROUGHPUT
        and at.get("p99") is not None
        and at["p99"] <= BAR_P99_OVER_PLAIN
        and errors["ray"] == 0
        and ray["bar"]["met"]
    )
    return {
        "ray": ray_fig,
        "plain": plain_fig,
        "ratio_ray_over_plain": ratios,
        f"ratio_rps_recommendations_{level}": at.get("rps"),
        f"ratio_p99_recommendations_{level}": at.get("p99"),
        "errors": errors,
        "ready_seconds": ready,
        "bars": {
            "concurrency": bar_level(levels),
            "throughput_min": BAR_THROUGHPUT,
            "p99_over_plain_max": BAR_P99_OVER_PLAIN,
            "recommendations_p99_over_healthz_max": BAR_P99_RATIO,
            "ray_recommendations_p99_over_healthz": ray["bar"]["ratio"],
            "met": met,
        },
        "settings": ray["settings"],
        "machine": {"ray_run": ray["machine"], "plain_run": plain["machine"]},
    }
