"""The web app in a real browser: headless Chromium (Debian's /usr/bin/chromium) through Playwright against the live
server. Skipped outside CI where Chromium is missing (`.ci/run` installs it)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import playwright.sync_api as playwright
import pytest
from conftest import DATA, HANG_MS, FamilyRuns, early_stopped_run, new_visitor, own_run, wait_until

from kobert_demo.tools.driving import CHROMIUM_ARGS

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    # Outside CI a machine without Chromium skips these; in CI (.ci/run installs it) a missing browser fails.
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"), reason="needs Chromium: apt-get install chromium"
    ),
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning"),  # raised inside gradio's queue
]

LABEL = "[data-testid='label-output-value']"
# The words the Logs tab would show an English visitor for states, reasons and figures.
ENGLISH = re.compile(
    r"\b(queued|training|done|stopped|failed|interrupted|reason|acc|accuracy|epoch|step|elapsed|ETA|sentences|"
    r"precision|recall|predicted|confidence|kept)\b"
)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless Chromium, whose every wait (an action's, an expectation's) guards a hang, whatever the CPU's speed."""
    playwright.expect.set_options(timeout=HANG_MS)
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def new_page(browser, **options):
    """A page in a new browser context, so a fresh visitor (the page mints its own token) on the session's shared
    server, whose actions wait as long as the expectations do (HANG_MS)."""
    page = browser.new_page(**options)
    page.set_default_timeout(HANG_MS)
    return page


def log_lines(page) -> int:
    """How many lines the Logs tab's log shows."""
    return len(page.locator("#run-log textarea").input_value().splitlines())


def test_train_watch_stop_and_predict(server: SimpleNamespace, browser, monkeypatch: pytest.MonkeyPatch) -> None:
    # The 40-epoch job is stopped from the page, but first the queue estimates it at the speed measured on this
    # machine: a slow or loaded CPU must not have it refused over the default two-hour limit.
    monkeypatch.setenv("KOBERT_DEMO_MAX_JOB_SECONDS", str(10**7))
    expect = playwright.expect
    page = new_page(browser, locale="ko-KR", viewport={"width": 1280, "height": 900})
    page.goto(server.url)

    # Tabs switch; nothing to follow yet
    page.get_by_role("tab", name="로그").click()
    expect(page.locator("#run-status")).to_contain_text("아직 따라갈 실행이 없습니다")
    page.get_by_role("tab", name="학습").click()

    # Upload: summary, detected columns, class plot
    page.locator("#train-file input[type=file]").set_input_files(str(DATA / "movie_ratings" / "train.tsv"))
    expect(page.locator("#train-summary")).to_contain_text("300행 읽음")
    expect(page.locator("#train-summary")).to_contain_text("클래스 3개")
    expect(page.locator("#class-plot")).to_contain_text("중립")

    # tiny, with its own learning rate; long enough to watch and stop
    page.get_by_text("tiny (오프라인").click()
    expect(page.locator("#lr input")).to_have_value("0.001")
    page.get_by_text("고급 설정").click()
    interval = page.get_by_label("로그 간격 (배치)")
    interval.click()
    interval.press("Control+A")
    interval.press_sequentially("5")  # typed key by key, as a person does
    interval.press("Tab")
    page.locator("#epochs input").fill("40")
    page.locator("#batch-size input").fill("16")
    page.get_by_text("고급 설정").click()
    expect(page.get_by_label("로그 간격 (배치)")).to_be_hidden()
    page.locator("#start").click()

    # Start opens the Logs tab, the log grows, the plots are drawn, an epoch completes
    expect(page.get_by_role("tab", name="로그")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#run-status")).to_contain_text("학습 중")
    expect(page.locator("#run-log textarea")).to_have_value(re.compile("epoch 1 batch id 6 loss"))
    before = log_lines(page)
    expect(page.locator("#run-log textarea")).to_have_value(re.compile("epoch 2 batch id 6 "))
    wait_until(lambda: log_lines(page) > before)  # the log grows while we watch
    expect(page.locator("#step-plot")).to_contain_text("손실")  # the plot's legend
    expect(page.locator("#run-progress")).to_contain_text(re.compile(r"에폭 \d+/40"))  # tiny may be past epoch 1
    expect(page.locator("#run-metrics")).to_contain_text("정확도")
    expect(page.locator("#epoch-plot")).to_contain_text("테스트")

    # Stop: within seconds, the last completed epoch is kept
    page.locator("#stop").click()
    expect(page.locator("#run-status")).to_contain_text("중지됨")
    expect(page.locator("#run-log textarea")).to_have_value(re.compile("stopped in"))
    # A Korean visitor reads every state, reason and figure in Korean (only the tutorial's log lines stay English)
    for shown in ("#run-status", "#run-progress", "#run-metrics", "#per-class", "#mistakes"):
        expect(page.locator(shown)).not_to_contain_text(ENGLISH)
    expect(page.locator("#run-select input")).not_to_have_value(ENGLISH)
    # A misclassified sentence, clicked: its words coloured for the class the model wrongly predicted
    page.locator("#mistakes [data-testid='cell-0-0']").click()
    sentence = page.locator("#mistakes [data-testid='cell-0-0']").inner_text().strip()
    expect(page.locator("#mistake-explanation .score-token")).to_have_count(
        2 * len(sentence.split()) - 1
    )  # the words and the spaces between them
    expect(page.locator("#mistake-line")).to_contain_text(re.compile(r"정답 \S+, 예측 \S+ \(확률"))

    # Predict with that run: the newest trained run is picked when the tab opens
    page.get_by_role("tab", name="예측").click()
    expect(page.locator("#model-ref input")).not_to_have_value("")
    typed = "배우들 연기가 정말 최고였어요"
    page.locator("#sentence textarea").fill(typed)
    expect(page.locator(LABEL)).to_have_text(re.compile("^(긍정|부정|중립)$"))
    expect(page.locator("#pieces")).to_contain_text("[CLS]")
    # Then why: one coloured span per word of the sentence, for the predicted class and then for a picked one
    words = page.locator("#explanation .score-token .text")
    expect(words).to_have_count(2 * len(typed.split()) - 1)  # the words and the spaces between
    assert [word for word in words.all_inner_texts() if word.strip()] == typed.split()
    predicted = page.locator(LABEL).inner_text()
    expect(page.locator("#explain-line")).to_contain_text(re.compile(rf"{predicted} 설명 \(확률 [\d.]+%\)"))
    other = next(name for name in ("긍정", "부정", "중립") if name != predicted)
    page.locator("#explain-class input").click()
    page.get_by_role("option", name=other).click()
    expect(page.locator("#explain-line")).to_contain_text(f"{other} 설명 (확률")

    # A reload reattaches to the same run with everything logged so far
    page.reload()
    page.get_by_role("tab", name="로그").click()
    expect(page.locator("#run-status")).to_contain_text("중지됨")
    expect(page.locator("#run-log textarea")).to_have_value(re.compile("epoch 1 batch id 1 loss"))
    page.close()


def test_english_for_browsers_that_ask(server: SimpleNamespace, browser) -> None:
    page = new_page(browser, locale="en-US")
    page.goto(server.url)
    expect = playwright.expect
    expect(page.get_by_role("tab", name="Train")).to_be_visible()
    expect(page.get_by_role("tab", name="Predict")).to_be_visible()
    expect(page.locator("#start")).to_have_text("Start training")
    page.get_by_role("tab", name="Logs").click()
    expect(page.locator("#run-status")).to_contain_text("No run to follow yet")
    page.close()


def test_a_family_folder_in_the_form_and_its_run_shown_by_link_with_its_tokens(
    server: SimpleNamespace, browser, family_folders: dict[str, Path], family_runs: FamilyRuns
) -> None:
    """The form offers each curated backbone's facts and takes a local folder as a custom model; a RoBERTa folder's
    run (conftest's family run, owned by another visitor of this server) opens read-only from its shared link with its
    log, and the Predict tab, given its name, shows the model's own tokens (<s> ... </s>, not [CLS]). The form's values
    reach /train's code (make_config, submit) as tests/ui/test_train_tab.py checks; the browser's training from the
    form is test_train_watch_stop_and_predict's, and a family folder trained through the app is the API's test."""
    expect = playwright.expect
    page = new_page(browser, locale="en-US", viewport={"width": 1280, "height": 900})
    page.goto(server.url)
    page.locator("#train-file input[type=file]").set_input_files(str(DATA / "movie_ratings" / "train.tsv"))
    expect(page.locator("#train-summary")).to_contain_text("train.tsv")

    # A curated backbone: its size, expected speed and the card's figure (or that it reports none)
    page.get_by_text("klue/roberta-large · 337M").click()
    note = page.locator("#backbone-note")
    expect(note).to_contain_text("Size: 337M parameters")
    expect(note).to_contain_text("NSMC accuracy: its model card reports none")
    page.get_by_text("beomi/KcELECTRA-base-v2022").click()
    expect(note).to_contain_text("91.97%: the figure in KcELECTRA's README")

    custom = page.locator("#custom-model textarea, #custom-model input").first
    expect(custom).to_be_hidden()
    page.get_by_text("Local folder or hub id").click()
    expect(note).to_contain_text("A BERT, RoBERTa or ELECTRA model")
    custom.fill(str(family_folders["roberta"]))
    expect(custom).to_have_value(str(family_folders["roberta"]))

    # The run by its shared link: the Logs tab, read-only, done, with the family's padding-free forward
    run = own_run(server.home, family_runs["roberta"].path, new_visitor(), "nsmc-roberta")
    page.goto(f"{server.url}?run={run}")
    expect(page.get_by_role("tab", name="Logs")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#run-status")).to_contain_text("done")
    expect(page.locator("#run-status")).to_contain_text("read-only")
    expect(page.locator("#run-log textarea")).to_have_value(re.compile("padding-free forward"))

    # Predict with it by name (a shared run is anyone's to predict with): the model's own tokens
    page.get_by_role("tab", name="Predict").click()
    page.locator("#model-source").get_by_text("Local folder / hub id").click()
    page.get_by_label("Model folder or hub id").fill(run)
    page.get_by_role("button", name="Load", exact=True).click()
    expect(page.locator("#model-ref input")).to_have_value(run)
    page.locator("#sentence textarea").fill("배우들 연기가 정말 최고였어요")
    expect(page.locator(LABEL)).to_have_text(re.compile("^[01]$"))  # NSMC's classes
    expect(page.locator("#pieces")).to_contain_text("<s>")
    expect(page.locator("#pieces")).to_contain_text("연기")
    expect(page.locator("#pieces")).not_to_contain_text("[CLS]")
    page.close()


def test_the_korean_logs_tab_shows_validation_and_the_early_stop(server: SimpleNamespace, browser) -> None:
    """A run that stopped early (its log hand-built: the engine's own is the engine tests'), opened by its shared
    link in Korean: the validation curves and the kept model's line beside the training curves, and why it stopped."""
    from kobert_demo.basics.config import TrainConfig
    from kobert_demo.basics.runs import Run

    name = "20250101-000000-earlystopped"
    Run.queue(server.home / name, TrainConfig(model="tiny"), {"owner": "someone", "train_file": "train.tsv"})
    run = Run.create(server.home / name, TrainConfig(model="tiny"), ["긍정", "부정"], {})
    for event in early_stopped_run():
        run.append(event)
    run.set_status("done")
    page = new_page(browser, locale="ko-KR", viewport={"width": 1280, "height": 900})
    page.goto(f"{server.url}?run={name}")
    expect = playwright.expect
    expect(page.locator("#run-notes")).to_contain_text("남긴 모델: 2 에폭")
    expect(page.locator("#run-notes")).to_contain_text("조기 종료")
    expect(page.locator("#step-plot")).to_contain_text("검증 정확도")
    expect(page.locator("#step-plot")).to_contain_text("남긴 모델")
    page.close()
