"""Synthetic shop generator: a catalogue, customers from planted taste segments, shopping sessions
(view -> cart -> purchase funnels, abandonment, repeat purchases, planted complements) and the
ground truth to check segmentation and cross-sell against."""

from recsys.synth.config import ShopConfig, ShopConfigError
from recsys.synth.generator import generate_shop
from recsys.synth.writer import OutputExistsError

__all__ = ["OutputExistsError", "ShopConfig", "ShopConfigError", "generate_shop"]
