"""Visitor-supplied strings (run, model, class and file names, error sentences that quote them) shown as text.

Another visitor can open a shared run, so a name must never become a link, an image or markup on their page:
Markdown components get the characters that start links, images, HTML, code and emphasis backslash-escaped
(CommonMark renders `\\x` as `x`), plus the `:` of `://` and the `.` of `www.` that bare-URL autolinks need;
other punctuation stays readable. Toasts render HTML, so they get HTML-escaped text.
"""

from __future__ import annotations

import html
import re
from typing import Any

import gradio as gr

_MARKUP = re.compile(r"([\\`*\[\]<>!|~$&@])")
_AUTOLINK = re.compile(r"(?i):(?=//)|(?<=www)\.")


def md_text(value: Any) -> str:
    """value as literal text inside Markdown (newlines kept as spaces: one value, one line)."""
    text = _MARKUP.sub(r"\\\1", " ".join(str(value).split()))
    return _AUTOLINK.sub(lambda match: "\\" + match[0], text)


def warn(text: str) -> None:
    """A warning toast that shows text as it is."""
    gr.Warning(html.escape(text))


def info(text: str) -> None:
    """An info toast that shows text as it is."""
    gr.Info(html.escape(text))
