"""Vector indexes for retrieval: one ``VectorIndex`` API over FAISS (flat/HNSW/IVF) and exact torch.

``make_index(kind, dim, device)`` picks the backend; ``VectorIndex.load(path)`` reopens any saved
index. FAISS is optional at import time: without it only the torch backend can be constructed.
"""

from recsys.index.base import UnknownIdError, VectorIndex
from recsys.index.factory import INDEX_KINDS, make_index
from recsys.index.faiss_index import FaissIndex
from recsys.index.torch_index import TorchIndex

__all__ = [
    "INDEX_KINDS",
    "FaissIndex",
    "TorchIndex",
    "UnknownIdError",
    "VectorIndex",
    "make_index",
]
