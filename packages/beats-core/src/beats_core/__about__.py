"""The version of beats-core."""

__version__ = "0.1.0"
