"""The version of beats-trainer."""

__version__ = "0.1.0"
