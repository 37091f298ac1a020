"""Saves that survive a kill (#23): SIGKILL of the training process at every file write of an epoch's save leaves
the previous complete model or the new one, never a mix, and the figures shown for it are its own.

One child process trains `tiny` on a handful of rows. Before the last step of each epoch it forks once per kill
point: the fork finishes the step, evaluates and saves (weights, tokenizer, card, figures, then the log and the
run's JSON files) and SIGKILLs itself at its Nth write into the run folder (an audit hook sees every open for
writing, rename, removal and mkdir; the weights, written by safetensors' Rust code, get two points of their own: just
before, and half written). After each kill the child checks the run as a reader would and restores the run folder.
Forks, not fresh processes: each kill costs a step and a save, not 6 s of imports.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TRAIN_ROWS, TEST_ROWS, BATCH = 24, 16, 8  # three steps an epoch
WEIGHTS = "model.safetensors"


@pytest.mark.slow
# The README's command kills at every other write of each epoch's save (odd writes in epoch 1, even in epoch 2): 46
# kills, each write once; -m extra kills at every write of both (46 s on the 2-core EPYC, the suite's longest test).
@pytest.mark.parametrize(
    "every", [pytest.param(False, id="each-write-once"), pytest.param(True, id="every-write", marks=pytest.mark.extra)]
)
def test_a_kill_at_any_write_of_a_save_leaves_a_whole_model_with_its_own_figures(tmp_path: Path, every: bool) -> None:
    from conftest import HANG_S  # here, not at the top: this file is also the child's script, which needs no conftest

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, __file__, str(tmp_path), "every" if every else "alternate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=HANG_S,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    verdicts = json.loads((tmp_path / "verdicts.json").read_text(encoding="utf-8"))
    wrong = [v for v in verdicts if v["problems"]]
    assert not wrong, json.dumps(wrong[:3], indent=1, ensure_ascii=False)
    killed = [v["event"] for v in verdicts]
    assert len(killed) >= 20
    # spread over the weights, the tokenizer, the model's JSON and the run's JSON
    for part in ("weights-before", "weights-half", "tiny_spm.model", "tokenizer.json", "metrics.json", "log.jsonl"):
        assert any(part in event for event in killed), part
    for part in ("summary.json", "status.json", "README.md"):
        assert any(part in event for event in killed), part
    assert {v["model_epoch"] for v in verdicts if v["epoch"] == 2} == {1, 2}  # kills before and after the swap
    assert {v["model_epoch"] for v in verdicts if v["epoch"] == 1} == {None, 1}


def test_a_run_killed_between_its_save_and_its_log_shows_the_models_figures(tmp_path: Path) -> None:
    """The model folder swapped in epoch 2, the kill came before the log said so: the summary (run list, /status)
    and the Logs tab's results show epoch 2's figures and mistakes, the ones saved with the weights."""
    import gradio as gr
    from conftest import ALICE, TEST, epoch, start

    from kobert_demo.app.queue import JobQueue, owner_id
    from kobert_demo.app.ui import logs_tab
    from kobert_demo.app.ui.state import AppState
    from kobert_demo.basics import files
    from kobert_demo.basics.config import TrainConfig
    from kobert_demo.basics.runs import Run

    home = tmp_path / "runs"
    Run.queue(home / "killed", TrainConfig(model="tiny"), {"owner": owner_id(ALICE)})
    run = Run.create(home / "killed", TrainConfig(model="tiny"), ["긍정", "부정"], {})
    run.append(start())
    run.append(epoch(epoch=1))
    second = epoch(epoch=2, test={**TEST, "accuracy": 0.9375}, mistakes=[{**epoch().mistakes[0], "text": "둘째"}])
    run.model_dir.mkdir()
    (run.model_dir / WEIGHTS).write_bytes(b"weights")
    files.write_json(run.model_dir / "metrics.json", second.to_json())
    run.set_status("failed")  # how the queue records a child killed by SIGKILL

    summary = Run(run.path).summary()
    assert (summary.kept_epoch, summary.test["accuracy"]) == (2, 0.9375)
    state = AppState(home, JobQueue(home), work=tmp_path / "work", private=tmp_path / "private")
    with gr.Blocks():
        tab = logs_tab.build(state, gr.BrowserState())
    out = logs_tab.poll(state, tab, logs_tab.Follow(run=run.name), ALICE, "en", refresh=True)
    assert "Accuracy 0.9375" in out[tab.metrics] and "epoch 2" in out[tab.metrics]
    assert list(out[tab.mistakes].iloc[:, 0]) == ["둘째"]


# --- the child process --------------------------------------------------------------------------------------------
def model_state(folder: Path) -> dict | None:
    """What identifies a complete model folder: its file names, and the bytes of all but the card and figures (which
    hold the training's elapsed seconds); None without weights."""
    from kobert_demo.basics.files import is_temp

    if not (folder / WEIGHTS).is_file():
        return None
    names = sorted(p.name for p in folder.iterdir() if not is_temp(p))  # a killed write of the final card leaves one
    digests = {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in names
        if name not in ("README.md", "metrics.json") and (folder / name).is_file()
    }
    return {"names": names, "digests": digests}


def check(run_path: Path, complete: dict[int, dict]) -> dict:
    """How a reader finds the run after a kill: which complete model it holds, and what is wrong (problems)."""
    from kobert_demo.basics.runs import open_run
    from kobert_demo.engine.loading import load_classifier
    from kobert_demo.serving.predict import Predictor

    run = open_run(run_path)
    state = model_state(run.model_dir)
    if not run.has_model:
        return {"model_epoch": None, "problems": [] if state is None else ["has_model false with weights"]}
    matches = [epoch for epoch, reference in complete.items() if reference["state"] == state]
    if not matches:
        return {"model_epoch": None, "problems": [f"a model folder like no complete one: {state['names']}"]}
    epoch, problems = matches[0], []
    try:
        classifier = load_classifier(run.model_dir)
    except Exception as error:  # the half-saved model of #23: "has no tokenizer"
        return {"model_epoch": epoch, "problems": [f"does not load: {error}"]}
    summary = run.summary()
    if summary.kept_epoch != epoch or summary.test != complete[epoch]["test"]:
        problems.append(f"the summary shows epoch {summary.kept_epoch}'s figures for epoch {epoch}'s weights")
    # The figures' most telling part, predicted again: each mistake's class and confidence
    mistakes = complete[epoch]["mistakes"]
    probabilities = Predictor(classifier).predict_proba([m["text"] for m in mistakes])
    for mistake, row in zip(mistakes, probabilities, strict=True):
        top = int(row.argmax())
        if classifier.label_names[top] != mistake["predicted"] or abs(row[top] - mistake["confidence"]) > 1e-3:
            problems.append(f"the weights do not make the mistake recorded for {mistake['text'][:20]!r}")
    saved = run.model_dir / "metrics.json"
    if not saved.is_file():
        return {"model_epoch": epoch, "problems": [*problems, "no metrics.json saved with the weights"]}
    metrics = json.loads(saved.read_text(encoding="utf-8"))
    saved_epoch = metrics["kept_epoch"]  # the kept model's figures (a DoneEvent's fields, #25)
    if saved_epoch != epoch or metrics["test"] != complete[epoch]["test"]:
        problems.append(f"model/metrics.json has epoch {saved_epoch}'s figures, the weights are epoch {epoch}'s")
    if metrics["weights_sha256"] != hashlib.sha256((run.model_dir / WEIGHTS).read_bytes()).hexdigest():
        problems.append("model/metrics.json names other weights")
    if run.kept().mistakes != mistakes:  # what the Logs tab shows for a killed run
        problems.append("the kept epoch's mistakes are not the model's")
    return {"model_epoch": epoch, "problems": problems}


class Killer:
    """An audit hook that counts this process's writes into the run folder and SIGKILLs it at the Nth (or, with
    kill_at None, records them all); the weights' Rust writer announces itself through two audit events of ours."""

    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def __init__(self, run_path: Path, kill_at: int | None) -> None:
        self.root, self.kill_at, self.events = str(run_path), kill_at, []

    def install(self) -> None:
        import transformers.modeling_utils as modeling_utils

        real = modeling_utils.safe_save_file

        def save_file(tensors, filename, metadata=None):
            sys.audit("saves.weights-before", filename)
            real(tensors, filename, metadata=metadata)
            sys.audit("saves.weights-half", filename)

        modeling_utils.safe_save_file = save_file
        sys.addaudithook(self)

    def __call__(self, event: str, args: tuple) -> None:
        path = self.written(event, args)
        if path is None or not path.startswith(self.root):
            return
        self.events.append(f"{event} {path[len(self.root) :]}")
        if len(self.events) == self.kill_at:
            if event == "saves.weights-half":
                os.truncate(path, os.path.getsize(path) // 2)  # what a kill half way through the write leaves
            os.kill(os.getpid(), signal.SIGKILL)

    def written(self, event: str, args: tuple) -> str | None:
        """The path this event writes, renames, removes or creates; None for any other event."""
        if event == "open":
            path, mode, flags = args
            writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & self.WRITE_FLAGS)
            return os.fsdecode(path) if writes and isinstance(path, (str, bytes, os.PathLike)) else None
        if event in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "shutil.rmtree", "os.truncate"):
            return os.fsdecode(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else None
        if event.startswith("saves."):
            return os.fsdecode(args[0])
        return None


def fork_kills(run_path: Path, work: Path, epoch: int, complete: dict[int, dict], every: bool) -> list[dict]:
    """Kill a fork of this process at each write of the save ahead (once unkilled first, to count them and keep
    the complete new model), checking the run after each; the run folder is left as it was. Not every: only the
    writes whose number has the epoch's parity (the two epochs' saves write alike, so each write is killed once)."""
    from kobert_demo.basics.runs import Run

    def remember(at: int) -> None:
        """The run's model, as the complete model of epoch `at` (saved and logged: no kill came between)."""
        run = Run(run_path)
        logged = [event for event in run.events() if event.type == "epoch"][-1]
        assert logged.epoch == at and logged.mistakes, "tiny made no mistake: nothing to predict again"
        complete[at] = {"state": model_state(run.model_dir), "test": logged.test, "mistakes": logged.mistakes}

    if Run(run_path).has_model:
        remember(epoch - 1)  # this process's own save, the one a kill must fall back to
    snapshot = work / f"snapshot-{epoch}"
    shutil.copytree(run_path, snapshot, symlinks=True)

    def restore() -> None:
        shutil.rmtree(run_path)
        shutil.copytree(snapshot, run_path, symlinks=True)

    def fork(kill_at: int | None) -> int | None:
        """How the fork ended in the parent (its signal, or minus its exit status); in the fork, None."""
        pid = os.fork()
        if pid == 0:
            Fork.killer = Killer(run_path, kill_at)
            Fork.killer.install()
            Fork.report = work / "writes.json"
            return None
        _, status = os.waitpid(pid, 0)
        return os.WTERMSIG(status) if os.WIFSIGNALED(status) else -os.WEXITSTATUS(status)

    ended = fork(None)
    if ended is None:
        return []
    assert ended == 0, f"the unkilled fork ended with {ended}"
    writes = json.loads((work / "writes.json").read_text(encoding="utf-8"))
    remember(epoch)
    verdicts = []
    for n in range(1 if every else 2 - epoch % 2, len(writes) + 1, 1 if every else 2):
        restore()
        ended = fork(n)
        if ended is None:
            return []
        assert ended == signal.SIGKILL, f"fork {n} ({writes[n - 1]}) ended with {ended}"
        verdicts.append({"epoch": epoch, "n": n, "event": writes[n - 1], **check(run_path, complete)})
    restore()
    return verdicts


class Fork:
    """In a fork: its killer, and where it reports its writes when it ends unkilled."""

    killer: Killer | None = None
    report: Path | None = None

    @classmethod
    def end(cls) -> None:
        """A fork that was not killed: report its writes and end here (never back in the caller's loop)."""
        if cls.killer is not None:
            cls.report.write_text(json.dumps(cls.killer.events), encoding="utf-8")  # outside the run folder
            os._exit(0)


def child(work: Path, every: bool) -> None:
    import torch

    from kobert_demo.basics.config import TrainConfig
    from kobert_demo.basics.data import make_splits, read_table
    from kobert_demo.engine.hf_tokenizer import save_for_transformers
    from kobert_demo.engine.tiny import train_tiny_tokenizer
    from kobert_demo.engine.train import train

    torch.set_num_threads(1)
    data = REPO / "tests" / "data" / "nsmc"
    train_data, test_data = read_table(data / "train.tsv"), read_table(data / "test.tsv")
    train_data.texts, train_data.labels = train_data.texts[:TRAIN_ROWS], train_data.labels[:TRAIN_ROWS]
    test_data.texts, test_data.labels = test_data.texts[:TEST_ROWS], test_data.labels[:TEST_ROWS]
    splits = make_splits(train_data, test_data)
    config = TrainConfig(model="tiny", epochs=2, batch_size=BATCH, precision="fp32", seed=3)
    run_path = work / "run"
    steps = TRAIN_ROWS // BATCH
    # The first save builds tokenizer.json from the tiny tokenizer (2.3 s, 2-core EPYC; then cached): built here once,
    # every fork inherits it rather than building it again.
    tokenizer = train_tiny_tokenizer(splits.train_texts, config.tokenizer_mode, config.max_len, config.seed)
    save_for_transformers(tokenizer, work / "warm")
    calls, verdicts, complete = 0, [], {}

    def should_stop() -> bool:
        nonlocal calls
        Fork.end()  # a fork's save and its log are done once the next step asks
        calls += 1
        if calls % steps == 0:  # before each epoch's last step
            verdicts.extend(fork_kills(run_path, work, calls // steps, complete, every))
        return False

    events = list(train(config, splits, run_path, should_stop=should_stop))
    Fork.end()
    assert events[-1].type == "done", events[-1]
    (work / "verdicts.json").write_text(json.dumps(verdicts, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    child(Path(sys.argv[1]), every=sys.argv[2] == "every")
