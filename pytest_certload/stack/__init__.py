"""The stack under test: PostgreSQL, certctl (or its stand-in) and the TLS target sidecars."""

from pytest_certload.stack.model import Stack, Target

__all__ = ["Stack", "Target"]
