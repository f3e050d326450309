"""Model versions for A/B arms: a send step's ``recommendations.model`` is a registry alias
(``champion``, ``challenger``) or a version number (``"3"``) of the registered model the service
serves; no ``model`` is what the service serves.

:class:`Recommenders` is what the worker asks for a recommender per reference: the default one is
given, the named ones are loaded on first use (``load``: the service's model loader over
``models:/<name>@<alias>`` or ``models:/<name>/<N>``) and kept while an active campaign names them.
A reference that cannot be loaded is an error for the sends that name it, never another model.
:func:`registry_check` refuses unknown references when a campaign is saved.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from recsys.errors import UnavailableError

if TYPE_CHECKING:
    from recsys.campaigns.recommend import Recommender

logger = logging.getLogger(__name__)

VERSION = re.compile(r"^[1-9][0-9]{0,17}$")
REFERENCE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MISSING = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND")  # MLflow codes
RETRY_S = 60.0  # a reference that failed to load is tried again after this long
DEFAULT_MODEL_NAME = "recsys"  # recsys.registry.MODEL_NAME (not imported: MLflow is heavy)


class ModelLoadError(UnavailableError):
    """The model a send step names cannot be loaded now."""


def model_name(served_uri: str) -> str:
    """The registered model behind the served URI (``models:/recsys@champion`` -> ``recsys``);
    the default name when the service serves a bundle directory."""
    if served_uri.startswith("models:/"):
        spec = served_uri.removeprefix("models:/")
        name = spec.partition("@")[0] if "@" in spec else spec.partition("/")[0]
        return name or DEFAULT_MODEL_NAME
    return DEFAULT_MODEL_NAME


def model_uri(reference: str, served_uri: str) -> str:
    """``models:/`` URI of ``reference`` (alias or version number) of the served model."""
    name = model_name(served_uri)
    if VERSION.match(reference):
        return f"models:/{name}/{reference}"
    return f"models:/{name}@{reference}"


def same_as_served(reference: str, served_uri: str) -> bool:
    """Whether ``reference`` is the URI the service serves (then its recommender is reused)."""
    return model_uri(reference, served_uri) == served_uri


class Recommenders:
    """Recommender per model reference (see the module docstring).

    Parameters
    ----------
    default : Recommender or None
        Serves send steps that name no model (None: they get no items).
    load : callable, optional
        ``reference -> Recommender``; raises when it cannot (a ``close`` attribute of what it
        returns is called when the reference is dropped). Without it only ``loaded`` exist.
    loaded : dict, optional
        Recommenders already built, by reference (kept regardless of :meth:`keep`).
    served : callable, optional
        ``reference -> bool``: the reference is what ``default`` serves (no second copy).
    """

    def __init__(self, default: Recommender | None,
                 load: Callable[[str], Recommender] | None = None,
                 loaded: dict[str, Recommender] | None = None,
                 served: Callable[[str], bool] | None = None) -> None:  # fmt: skip
        self.default = default
        self._load = load
        self._fixed = dict(loaded or {})
        self._served = served or (lambda _: False)
        self._cache: dict[str, Recommender] = {}
        self._failed: dict[str, tuple[float, str]] = {}

    @classmethod
    def of(cls, recommenders: Recommenders | dict[str, Recommender] | None) -> Recommenders:
        """A :class:`Recommenders` from a ``name -> Recommender`` dict (``"default"``: no model)."""
        if isinstance(recommenders, Recommenders):
            return recommenders
        named = dict(recommenders or {})
        return cls(named.pop("default", None), loaded=named)

    def get(self, reference: str | None) -> Recommender | None:
        """The recommender of ``reference`` (None: the default), loading it on first use.

        Raises
        ------
        ModelLoadError
            It cannot be loaded (or failed less than ``RETRY_S`` ago); the message says why.
        """
        if reference is None or self._served(reference):
            return self.default
        if reference in self._fixed:
            return self._fixed[reference]
        if reference in self._cache:
            return self._cache[reference]
        failed = self._failed.get(reference)
        if failed is not None and time.monotonic() - failed[0] < RETRY_S:
            raise ModelLoadError(failed[1])
        if self._load is None:
            raise ModelLoadError(f"model {reference!r}: no recommender for it in this worker")
        try:
            recommender = self._load(reference)
        except Exception as exc:  # MLflow, downloads and bundles fail in many types
            problem = f"model {reference!r} cannot be loaded: {exc}"
            logger.error("campaign worker: %s", problem)
            self._failed[reference] = (time.monotonic(), problem)
            raise ModelLoadError(problem) from None
        self._failed.pop(reference, None)
        self._cache[reference] = recommender
        logger.info("campaign worker: model %r loaded", reference)
        return recommender

    def keep(self, references: Iterable[str]) -> None:
        """Load ``references`` now (outside any transaction; a failure is logged and remembered)
        and drop the loaded ones no active campaign names any more."""
        wanted = set(references)
        for reference in list(self._cache):
            if reference not in wanted:
                close = getattr(self._cache.pop(reference), "close", None)
                if close is not None:
                    close()
                logger.info("campaign worker: model %r unloaded (no campaign names it)", reference)
        for reference in sorted(wanted):
            try:
                self.get(reference)
            except ModelLoadError:
                pass  # logged; the sends naming it fail with the reason


def registry_check(tracking_uri: str, served_uri: str) -> Callable[[str], str | None]:
    """``reference -> problem or None`` against the MLflow registry: a problem when the registry
    answers that the alias or version does not exist; None when it exists or the registry cannot
    be reached now (the send then fails if it still cannot load it)."""

    def check(reference: str) -> str | None:
        name = model_name(served_uri)
        if tracking_uri.startswith("sqlite:///"):  # not created here just to find it empty
            path = Path(tracking_uri.removeprefix("sqlite:///"))
            if str(path) != ":memory:" and not path.exists():
                return f"no registered model {name!r}: no MLflow registry at {tracking_uri}"
        from mlflow.exceptions import MlflowException

        from recsys.registry import Registry, RegistryUnavailableError

        try:
            registry = Registry(tracking_uri)
            if VERSION.match(reference):
                registry.client.get_model_version(name, reference)
            else:
                registry.client.get_model_version_by_alias(name, reference)
        except RegistryUnavailableError as exc:
            logger.warning("model %r not checked: %s", reference, exc)
            return None
        except MlflowException as exc:
            if exc.error_code in MISSING:
                kind = "version" if VERSION.match(reference) else "alias"
                return f"registered model {name!r} has no {kind} {reference!r}"
            logger.warning("model %r not checked (registry: %s)", reference, exc)
            return None
        except Exception as exc:  # the registry is down: accept, the worker reports a failure
            logger.warning("model %r not checked (registry: %s)", reference, exc)
            return None
        return None

    return check
