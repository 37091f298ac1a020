"""Visitor-supplied strings (run, model, class and file names, error sentences that quote them) shown as text.

Another visitor can open a shared run, so a name must never become a link, an image or markup on their page:
Markdown components get every ASCII punctuation mark backslash-escaped (CommonMark renders `\\x` as `x`, and an
escaped `:` or `.` also stops bare-URL autolinks), and toasts, which render HTML, get HTML-escaped text.
"""

from __future__ import annotations

import html
import re
from typing import Any

import gradio as gr

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character


def md_text(value: Any) -> str:
    """value as literal text inside Markdown (newlines kept as spaces: one value, one line)."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(value).split()))


def warn(text: str) -> None:
    """A warning toast that shows text as it is."""
    gr.Warning(html.escape(text))


def info(text: str) -> None:
    """An info toast that shows text as it is."""
    gr.Info(html.escape(text))
