"""Memory of what was recommended to whom recently, for the suppression filter."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class RecentRecommendations:
    """Per-user item sets with a time-to-live; bounded in users (least recently used dropped)."""

    def __init__(self, ttl_seconds: float = 3600.0, max_users: int = 100_000) -> None:
        self.ttl = float(ttl_seconds)
        self.max_users = int(max_users)
        self._by_user: OrderedDict[str, dict[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def record(self, user_id: str, items, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            seen = self._by_user.pop(user_id, {})
            for item in items:
                seen[int(item)] = now
            self._by_user[user_id] = seen
            while len(self._by_user) > self.max_users:
                self._by_user.popitem(last=False)

    def recent(self, user_id: str, now: float | None = None) -> list[int]:
        now = time.time() if now is None else now
        with self._lock:
            seen = self._by_user.get(user_id)
            if not seen:
                return []
            fresh = {item: at for item, at in seen.items() if now - at <= self.ttl}
            self._by_user[user_id] = fresh
            return list(fresh)

    def forget(self, user_id: str) -> int:
        with self._lock:
            return len(self._by_user.pop(user_id, {}))
