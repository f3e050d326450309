"""How the API process reaches the model: in-process (tests, notebooks) or through Ray Serve.

Both clients send the same typed requests (``recsys.recommend``) to the same entry,
``ModelServer.answer``; a request the model refused comes back as a ``Failure`` and is raised
here again as its error kind, which the HTTP layer maps to a status code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from ray.exceptions import RayActorError
from starlette.concurrency import run_in_threadpool

from recsys.errors import UnavailableError
from recsys.recommend import Request
from serving.failure import Failure


class ModelClient(ABC):
    """The model as the routes see it; every method is a coroutine."""

    async def answer(self, request: Request) -> dict:
        """The model's JSON-ready answer to ``request``.

        Raises
        ------
        RecsysError
            Of the kind the model refused the request with (bad input, unknown item, ...).
        """
        result = await self.send(request)
        if isinstance(result, Failure):
            raise result.error()
        return result

    @abstractmethod
    async def send(self, request: Request) -> dict | Failure:
        """Deliver one request to ``ModelServer.answer``; its answer or Failure."""

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

    async def send(self, request: Request) -> dict | Failure:
        return (await run_in_threadpool(self.server.answer, [request]))[0]

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

    async def send(self, request: Request) -> dict | Failure:
        try:
            return await self.handle.answer.remote(request)
        except RayActorError as exc:  # the replica died with the request (e.g. its node was lost)
            raise UnavailableError(
                "the model replica answering this request went away; retry (another replica "
                "takes over)"
            ) from exc

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
