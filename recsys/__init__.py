"""recsys: customer segmentation and recommendation for marketing automation."""

__version__ = "0.1.0"
