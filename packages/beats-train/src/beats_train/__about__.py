"""The version of beats-train."""

__version__ = "0.1.0"
