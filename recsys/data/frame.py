"""The one module that decides between pandas and cuDF's pandas accelerator.

Library code imports ``pd`` from here. With ``RECSYS_DATAFRAME=cudf`` (or ``auto`` on a machine
with a GPU and cuDF installed, as in the GPU image), cuDF's pandas accelerator is installed before
pandas is first imported, so the same pandas-API code runs on the GPU; elsewhere it is plain pandas.
"""

from __future__ import annotations

import importlib.util
import logging
import sys

from recsys.settings import dataframe_choice

logger = logging.getLogger(__name__)

_CHOICE = dataframe_choice()


def _install_cudf_accelerator() -> bool:
    if _CHOICE == "pandas":
        return False
    if _CHOICE == "auto" and importlib.util.find_spec("cudf") is None:
        return False  # the common CPU case, decided without importing torch
    from recsys.device import cudf_available

    if not cudf_available():
        if _CHOICE == "cudf":
            raise RuntimeError(
                "RECSYS_DATAFRAME=cudf but cuDF or a CUDA GPU is missing; "
                "install the 'gpu' extra on a GPU machine or set RECSYS_DATAFRAME=pandas"
            )
        return False
    if "pandas" in sys.modules:
        logger.warning("pandas was imported before recsys; cuDF's accelerator may not apply")
    import cudf.pandas

    cudf.pandas.install()
    return True


GPU_DATAFRAMES = _install_cudf_accelerator()

import pandas as pd  # noqa: E402  (must come after the accelerator is installed)

__all__ = ["GPU_DATAFRAMES", "pd"]
