"""beats-extract."""

from beats_extract.__about__ import __version__

__all__ = ["__version__"]
