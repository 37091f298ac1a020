"""Regenerate the README screenshots: `python -m kobert_demo.tools.screenshots [--out assets] [--locale ko-KR]`.

Starts the app on a temporary runs home, trains `tiny` on the NSMC sample in a headless Chromium (Debian's
/usr/bin/chromium, with fonts-nanum for Hangul), and captures the Train, Logs (its first mistake explained) and
Predict (a sentence predicted and explained) tabs. Not part of the tests.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
from pathlib import Path

from kobert_demo.tools.driving import CHROMIUM_ARGS, free_port

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"  # in a clone of the repo


def capture(out: Path, locale: str, data: Path, epochs: int) -> list[Path]:
    """Drive the app like a visitor and save one PNG per tab; returns the files written."""
    from playwright.sync_api import expect, sync_playwright

    from kobert_demo.app.ui import build_app

    suffix = "" if locale.startswith("ko") else f"_{locale.split('-')[0]}"
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as home:
        demo = build_app(home)
        port = free_port()
        demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(locale=locale, viewport={"width": 1280, "height": 900})
                page.goto(f"http://127.0.0.1:{port}/")
                page.locator("#train-file input[type=file]").set_input_files(str(data / "nsmc" / "train.tsv"))
                expect(page.locator("#train-summary")).to_contain_text("train.tsv", timeout=30_000)
                page.locator("#test-file input[type=file]").set_input_files(str(data / "nsmc" / "test.tsv"))
                expect(page.locator("#train-summary")).to_contain_text("test.tsv", timeout=30_000)
                page.locator("#backbone label").filter(has_text="tiny").click()
                page.locator("#epochs input").fill(str(epochs))
                page.locator("#batch-size input").fill("32")
                page.locator("#lr input").click()  # leave the batch field so its value is sent
                page.wait_for_timeout(1500)
                written.append(out / f"train{suffix}.png")
                page.screenshot(path=written[-1], full_page=True)

                page.locator("#advanced").click()
                page.locator("#log-interval input").fill("10")
                page.locator("#start").click()
                finished = re.compile(r"(done|stopped) in")
                expect(page.locator("#run-log textarea")).to_have_value(finished, timeout=900_000)
                page.locator("#mistakes [data-testid='cell-0-0']").click()  # why the first mistake
                expect(page.locator("#mistake-explanation .score-token").first).to_be_visible(timeout=60_000)
                page.wait_for_timeout(2500)
                written.append(out / f"logs{suffix}.png")
                page.screenshot(path=written[-1], full_page=True)

                page.locator("#tab-predict-button").click()
                expect(page.locator("#model-ref input")).not_to_have_value("", timeout=30_000)
                page.locator("#sentence textarea").fill("배우들 연기가 정말 최고였어요. 또 보고 싶네요")
                expect(page.locator("[data-testid='label-output-value']")).not_to_be_empty(timeout=60_000)
                expect(page.locator("#explanation .score-token").first).to_be_visible(timeout=60_000)
                page.locator("#many-lines textarea").fill("시간 낭비였다\n인생 영화입니다 ㅠㅠ\n그냥 그랬어요")
                page.locator("#predict-lines").click()
                expect(page.locator("#predictions")).to_contain_text("시간 낭비", timeout=60_000)
                page.wait_for_timeout(1500)
                written.append(out / f"predict{suffix}.png")
                page.screenshot(path=written[-1], full_page=True)
                browser.close()
        finally:
            demo.close()
    return written


def main(argv: list[str] | None = None) -> None:
    """Parse the flags and write the screenshots."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("assets"), help="folder for the PNG files")
    parser.add_argument("--locale", default="ko-KR", help="browser language (ko-KR, en-US)")
    parser.add_argument(
        "--data", type=Path, help="a folder with nsmc/train.tsv and nsmc/test.tsv (default, in a clone: tests/data)"
    )
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    args.data = args.data or (DATA if DATA.is_dir() else None)
    if args.data is None:
        parser.error("--data is needed: a folder with nsmc/train.tsv and nsmc/test.tsv (an installed package has none)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    for path in capture(args.out, args.locale, args.data, args.epochs):
        print(path)


if __name__ == "__main__":
    main()
