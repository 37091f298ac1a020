"""Korean by default, English for browsers that ask for it: static labels through gr.I18n, messages through `t()`.

Every sentence lives in the one catalogue, `kobert_demo.basics.messages.MESSAGES`; this module only picks the language.

The browser picks the language (navigator.language): English when it asks for English, Korean for every other
language the Gradio frontend knows. Messages made on the server follow the same rule from Accept-Language.
"""

from __future__ import annotations

import gradio as gr

from kobert_demo.basics.messages import catalogue, t

__all__ = ["I18N", "lang_of", "pick_lang", "t"]

# The languages the Gradio frontend knows (gradio/templates/frontend/assets, lang/*.json).
GRADIO_LOCALES = [
    *("ar", "ca", "ckb", "de", "en", "es", "et", "eu", "fa", "fi", "fr", "he", "hi", "id", "ja", "ko", "lt"),
    *("nb", "nl", "pl", "pt-BR", "pt", "ro", "ru", "sv", "ta", "th", "tr", "uk", "ur", "uz", "zh-CN", "zh-TW"),
]


def static_labels() -> gr.I18n:
    """gr.I18n for component labels: the catalogue's English for English browsers, its Korean for all others."""
    english, korean = catalogue("en"), catalogue("ko")
    return gr.I18n(**{locale: english if locale == "en" else korean for locale in GRADIO_LOCALES})


I18N = static_labels()


def pick_lang(accept_language: str | None) -> str:
    """ "en" or "ko" from an Accept-Language header, the way the frontend picks from navigator.language."""
    first = (accept_language or "").split(",")[0].split(";")[0].strip()
    if not first:
        return "ko"
    if first not in GRADIO_LOCALES:
        first = first.split("-")[0]
    if first not in GRADIO_LOCALES:
        return "en"
    return "en" if first == "en" else "ko"


def lang_of(request: gr.Request | None) -> str:
    """The visitor's language for messages made on the server."""
    headers = getattr(request, "headers", None) or {}
    return pick_lang(headers.get("accept-language"))
