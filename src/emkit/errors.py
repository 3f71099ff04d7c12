"""User-facing errors.

Every problem a user can fix (bad input file, unknown model name, missing API key...) is raised
as an :class:`EmkitError` whose message names the file, line and field where that applies. The CLI
prints the message on one line and exits with code 2; nothing already stored is touched.
"""

from __future__ import annotations


class EmkitError(Exception):
    """An error caused by the user's input or environment, with a message meant for humans.

    Every message is redacted here (credentials in URLs, values sent as keys): this is the one
    place all user-facing errors pass through, so none can print or store a secret.
    """

    exit_code = 2

    def __init__(self, *args: object):
        from emkit.redact import redact

        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class InputError(EmkitError):
    """A bad input file or value. ``where`` is ``file:line`` (or just ``file``); ``field`` optional."""

    def __init__(self, message: str, *, where: str | None = None, field: str | None = None):
        self.where = where
        self.field = field
        self.detail = message
        prefix = f"{where}: " if where else ""
        field_part = f"field '{field}': " if field else ""
        super().__init__(f"{prefix}{field_part}{message}")


class MissingKeyError(EmkitError):
    """An API key variable is not set. The message names the variable, never a value."""

    def __init__(self, variable: str, purpose: str = ""):
        self.variable = variable
        extra = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"environment variable {variable} is not set{extra}")


class IntegrityError(EmkitError):
    """A downloaded or mirrored file does not match its pinned sha256."""
