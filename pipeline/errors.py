"""Errors a user can fix. The CLI prints their message on one line and exits non-zero."""

from __future__ import annotations

EXIT_USER_ERROR = 2
"""The exit status of a command that stopped on a UserError (a supervisor reads it as "do not retry")."""


class UserError(Exception):
    """A mistake in configuration, input files or arguments; the message names the value and the fix."""


class ConfigError(UserError):
    """A setting (environment variable or TOML key) has an invalid value."""
