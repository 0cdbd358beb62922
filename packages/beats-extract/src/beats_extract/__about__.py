"""The version of beats-extract."""

__version__ = "0.1.0"
