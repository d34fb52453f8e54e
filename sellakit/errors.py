"""The kit's errors: library code raises these (and only these) for problems a person can fix.

Each message names the file, argument or setting at fault and the fix; the command line turns
any :class:`SellakitError` into that one paragraph and exit code 2.
"""

from __future__ import annotations

__all__ = ["SellakitError", "DataError", "CacheError", "ConfigError"]


class SellakitError(Exception):
    """Base of every error the kit raises on purpose."""


class DataError(SellakitError, ValueError):
    """Input data that cannot be used; the message names the file and the fix."""


class CacheError(SellakitError, RuntimeError):
    """A file could not be fetched or verified; the message names the file and the fix."""


class ConfigError(SellakitError, ValueError):
    """A setting outside what the kit accepts; the message names the field and its choices."""
