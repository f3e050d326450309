"""How the API process reaches the model: in-process (tests, notebooks) or through Ray Serve."""

from __future__ import annotations

from abc import ABC, abstractmethod

from fastapi import HTTPException
from starlette.concurrency import run_in_threadpool


def unwrap(answer: dict) -> dict:
    """Turn a model-side ``{"error": ...}`` answer into the matching HTTP error."""
    error = answer.get("error") if isinstance(answer, dict) else None
    if error:
        raise HTTPException(error["status"], error["detail"])
    return answer


class ModelClient(ABC):
    """The model operations the routes need; every method is a coroutine."""

    @abstractmethod
    async def recommend(self, user_id: str, k: int, events: list, filters: dict) -> dict: ...

    @abstractmethod
    async def similar(self, item_id: str, k: int, filters: dict) -> dict: ...

    @abstractmethod
    async def cross_sell(self, items, k, user_id, events, filters) -> dict: ...

    @abstractmethod
    async def info(self) -> dict: ...

    @abstractmethod
    async def reload(self) -> dict:
        """Swap every model replica to the current champion; returns versions."""

    @abstractmethod
    async def forget_user(self, user_id: str) -> int:
        """Drop the user's in-memory state on every model replica; returns records removed."""


class LocalModelClient(ModelClient):
    """Calls a ``ModelServer`` in this process (in a worker thread, off the event loop)."""

    def __init__(self, server) -> None:
        self.server = server

    async def recommend(self, user_id, k, events, filters) -> dict:
        return unwrap(await run_in_threadpool(self.server.recommend, user_id, k, events, filters))

    async def similar(self, item_id, k, filters) -> dict:
        return unwrap(await run_in_threadpool(self.server.similar, item_id, k, filters))

    async def cross_sell(self, items, k, user_id, events, filters) -> dict:
        return unwrap(
            await run_in_threadpool(self.server.cross_sell, items, k, user_id, events, filters)
        )

    async def info(self) -> dict:
        return self.server.info()

    async def reload(self) -> dict:
        return await run_in_threadpool(self.server.reload)

    async def forget_user(self, user_id: str) -> int:
        return await run_in_threadpool(self.server.forget_user, user_id)


class RayModelClient(ModelClient):
    """Calls the model deployment through its Ray Serve handle; control calls go to every
    replica (``broadcast``), request calls to one."""

    def __init__(self, handle) -> None:
        self.handle = handle

    async def recommend(self, user_id, k, events, filters) -> dict:
        return unwrap(await self.handle.recommend.remote(user_id, k, events, filters))

    async def similar(self, item_id, k, filters) -> dict:
        return unwrap(await self.handle.similar.remote(item_id, k, filters))

    async def cross_sell(self, items, k, user_id, events, filters) -> dict:
        return unwrap(await self.handle.cross_sell.remote(items, k, user_id, events, filters))

    async def info(self) -> dict:
        return await self.handle.info.remote()

    async def reload(self) -> dict:
        results = await self.handle.broadcast("reload").results_async(timeout_s=600)
        versions = {r["version"] for r in results}
        return {
            "previous_version": results[0]["previous_version"],
            "version": results[0]["version"] if len(versions) == 1 else ",".join(sorted(versions)),
            "changed": any(r["changed"] for r in results),
        }

    async def forget_user(self, user_id: str) -> int:
        results = await self.handle.broadcast("forget_user", user_id).results_async(timeout_s=60)
        return int(sum(results))
