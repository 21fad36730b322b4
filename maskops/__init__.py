"""maskops: face-mask / gender / age classification as reproducible, checked, tracked assets."""

__version__ = "0.1.0"
