"""Tools for testing code built on foretell: conformance checks any model can be run through.

This package imports only `foretell.core` and `foretell.errors`, so a flavor, a
registry or a user's own model class can use it without pulling in a server.
"""

from foretell.testing.conformance import check_model

__all__ = ["check_model"]
