"""ui/render.py: visitor strings shown as literal text, never markup."""

from __future__ import annotations

from kobert_demo.app.ui.render import md_text


def test_names_never_become_links_or_markup() -> None:
    assert md_text("[x](http://evil)") == "\\[x\\](http\\://evil)"
    assert md_text("**bold** <b>") == "\\*\\*bold\\*\\* \\<b\\>"
    assert md_text("www.evil.com") == "www\\.evil.com"
