"""The fixed evaluation protocol, its metrics and the evaluation loop."""

from recsys.eval.evaluate import evaluate_model
from recsys.eval.protocol import (
    TemporalSplit,
    first_occurrences,
    interaction_pairs,
    temporal_split,
)

__all__ = [
    "TemporalSplit",
    "evaluate_model",
    "first_occurrences",
    "interaction_pairs",
    "temporal_split",
]
