"""Errors a user can act on, importable without loading torch (so the CLI starts fast).

Each error is a message key plus parameters (see `messages.py`): `str(error)` is the English sentence (the CLI,
logs and the web API show it), `error.text("ko")` the Korean one (the web app shows it to Korean visitors).
"""

from __future__ import annotations

from typing import Any

from kobert_demo.basics.messages import Term, t


def _rebuild(cls: type[UserFacingError], key: str, params: dict[str, Any]) -> UserFacingError:
    return cls(key, **params)


class UserFacingError(Exception):
    """One sentence a user can act on, kept as a message key and its parameters so it can be shown in any language.

    A parameter that is itself a UserFacingError (an error this one wraps) or a Term is shown in the same language.
    """

    def __init__(self, key: str, /, **params: Any) -> None:
        self.key, self.params = key, params
        super().__init__(self.text("en"))

    def text(self, lang: str) -> str:
        """The sentence in lang ("ko" Korean, anything else English)."""
        values = {
            name: value.text(lang) if isinstance(value, (UserFacingError, Term)) else value
            for name, value in self.params.items()
        }
        return t(lang, self.key, **values)

    def __reduce__(self) -> tuple:  # picklable although __init__ takes a key, not the message
        return _rebuild, (type(self), self.key, self.params)


class BackboneError(UserFacingError, RuntimeError):
    """A backbone that cannot be found or loaded, as one sentence that names the remedy."""
