"""Who may call the server: API keys with scopes and rate limits, kept under FORETELL_HOME."""

from foretell.access.keys import SCOPES, ApiKey, KeyBook

__all__ = ["SCOPES", "ApiKey", "KeyBook"]
