"""beats-trainer."""

from beats_trainer.__about__ import __version__

__all__ = ["__version__"]
