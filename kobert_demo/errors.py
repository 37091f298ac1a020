"""Errors a user can act on, importable without loading torch (so the CLI starts fast)."""


class BackboneError(RuntimeError):
    """A backbone that cannot be found or loaded, as one sentence that names the remedy."""
