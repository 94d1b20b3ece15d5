"""pytest-certload: load scenarios for certctl as ordinary pytest tests."""

__version__ = "0.1.0"
