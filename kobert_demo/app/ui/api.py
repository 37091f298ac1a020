"""The stable API for gradio_client: named endpoints with plain inputs and JSON outputs, apart from the UI's events.

Endpoints that take or give files use real (hidden) components, so uploads are checked like the UI's; the rest
are typed functions (gr.api). Every failure reaches the client as one sentence (gr.Error). No
`from __future__ import annotations` here: gr.api reads the type hints at runtime.
"""

import json
from typing import Any

import gradio as gr

from kobert_demo.app.queue import is_owner
from kobert_demo.app.ui import predict_tab, shared
from kobert_demo.basics.config import KOBERT_HUB_ID
from kobert_demo.basics.runs import Run, RunStatus
from kobert_demo.engine.backbones import is_curated

from .logs_tab import export_run, resume_run
from .state import AppState, VisitorError, api_errors, check_visitor, client_address
from .train_tab import CUSTOM, make_config, submit


def validate_report(path: str | None, text_col: str | None, label_col: str | None) -> dict:
    """What `python -m kobert_demo validate --json` prints, plus the first rows."""
    from kobert_demo.basics.data import read_table

    if not path:
        raise VisitorError("err_no_train_file")
    data = read_table(path, text_col or None, label_col or None)
    return {
        **data.report(),
        "file": data.name,
        "head": json.loads(data.head.to_json(orient="records", force_ascii=False)),
    }


def status_json(status: RunStatus) -> dict:
    """A run's status as the API gives it: the reason in English (the API speaks English) and its message key."""
    return {
        "state": status.state,
        "reason": status.reason("en"),
        "reason_key": status.reason_key,
        "pid": status.pid,
        "updated": status.updated,
    }


def run_summary(state: AppState, run: Run, visitor: str) -> dict:
    """A run's state, queue place, progress and (once an epoch is done) the kept epoch's test metrics, from its
    status and summary (never its whole log)."""
    status, summary, config = run.status(), run.summary(), run.config()
    last = summary.last_step
    position = state.queue.position(run) if status.state == "queued" else None
    progress = None
    if last:
        progress = {
            "epoch": last.epoch, "step": last.step, "total_steps": last.total_steps, "loss": last.loss,
            "train_acc": last.train_acc, "elapsed": last.elapsed, "eta": last.eta,
        }  # fmt: skip
    return {
        "run": run.name,
        "state": status.state,
        "reason": status.reason("en"),
        "reason_key": status.reason_key,
        "owner": is_owner(run, visitor),
        "model": config.get("model"),
        "labels": config.get("label_names"),
        "train_file": config.get("train_file"),
        "created": config.get("created"),
        "queue_position": position,
        "wait_s": state.queue.wait_estimate(run) if position else None,
        "progress": progress,
        "metrics": summary.test,
        "has_model": run.has_model,
    }


def build(state: AppState) -> None:
    """Declare the API endpoints (call inside the app's Blocks)."""

    @api_errors
    def predict(model: str, text: str) -> dict:
        """Class probabilities for one sentence. model: a run name, a `zip:<id>` from /load_model_zip, a local
        model folder or a hub id. Returns {"label": top class, "confidences": {class: probability}}."""
        probs = predict_tab.predict_one(state, model, text)
        return {"label": max(probs, key=probs.__getitem__), "confidences": probs}

    @api_errors
    def predict_lines(model: str, texts: list[str]) -> list[dict]:
        """Class probabilities for several sentences: one {"text", "label", "confidence", "p_<class>"...} per
        sentence, the columns and values of the predictions CSV."""
        return predict_tab.predict_lines(state, model, texts).records()

    @api_errors
    def pieces(model: str, text: str) -> dict:
        """How the model's own tokenizer splits a sentence: pieces, ids and which pieces are unknown ([UNK])."""
        encoded = state.predictor(model).pieces(shared.checked_text(text))
        return {"pieces": encoded.pieces, "ids": encoded.ids, "unknown": encoded.unknown}

    @api_errors
    def explain(model: str, text: str, label: str = "") -> dict:
        """Why this label: each word's share of `label`'s log-probability ("" = the predicted class), by Integrated
        Gradients. Returns {"text", "label", "probability", "words" (text.split()), "word_scores" (one per word,
        positive = towards the label), "tokens", "token_scores", "completeness_gap"}."""
        return shared.explain_one(state, model, text, label).to_json()

    @api_errors
    def status(run: str, visitor: str = "") -> dict:
        """A run's state (queued|running|done|stopped|failed|interrupted), queue position, progress and metrics;
        `owner` says whether visitor (optional) owns it."""
        return run_summary(state, state.run(run), check_visitor(visitor) if visitor else "")

    @api_errors
    def logs(run: str, offset: int = 0) -> dict:
        """The run's events logged after byte `offset`: {"events": [...], "offset": next offset, "state": ...}."""
        found = state.run(run)
        events, offset = found.read_events(max(0, int(offset)))
        return {"events": [event.to_json() for event in events], "offset": offset, "state": found.status().state}

    @api_errors
    def runs(visitor: str) -> list[dict]:
        """This visitor's runs, newest first."""
        return [run_summary(state, run, visitor) for run in state.visitor_runs(visitor)]

    @api_errors
    def stop(run: str, visitor: str) -> dict:
        """Stop the visitor's run (within seconds; the best model so far is kept). Returns its status."""
        found = state.owned_run(run, visitor)
        state.queue.stop(found)
        return status_json(found.status())

    @api_errors
    def resume(run: str, visitor: str, request: gr.Request) -> str:
        """Resume the visitor's interrupted, stopped or failed run from its last checkpoint; returns its name."""
        return resume_run(state, run, visitor, client_address(request))

    @api_errors
    def delete(run: str, visitor: str) -> str:
        """Delete the visitor's finished run; returns its name."""
        state.queue.delete(state.owned_run(run, visitor))
        return run

    for fn in (predict, predict_lines, pieces):
        gr.api(fn, api_name=fn.__name__, concurrency_id="predict", concurrency_limit=predict_tab.PREDICT_CONCURRENCY)
    # 8 to 64 forward and backward passes each (0.55 s p50 at KoBERT's size on two cores): one at a time, in a queue
    # of its own, so that explanations never hold up /predict.
    gr.api(explain, api_name="explain", concurrency_id="explain", concurrency_limit=1)
    for fn in (status, logs, runs, stop, resume, delete):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)

    with gr.Column(visible=False):
        file = gr.File(label="file")
        train_file = gr.File(label="train_file")
        test_file = gr.File(label="test_file")
        valid_file = gr.File(label="valid_file")
        text_col = gr.Textbox(label="text_col")
        label_col = gr.Textbox(label="label_col")
        model = gr.Textbox(KOBERT_HUB_ID, label="model")
        options = gr.JSON({}, label="options")
        visitor = gr.Textbox(label="visitor")
        run = gr.Textbox(label="run")
        model_zip = gr.File(label="model_zip")
        predict_model = gr.Textbox(label="model")
        report = gr.JSON(label="report")
        run_name = gr.Textbox(label="run_name")
        model_ref = gr.Textbox(label="model_ref")
        out_file = gr.File(label="out_file")
        buttons = [gr.Button() for _ in range(5)]

    @api_errors
    def validate(file: str | None, text_col: str | None, label_col: str | None) -> dict:
        """Read a data file: detected columns, rows kept and dropped, classes, first rows."""
        return validate_report(file, text_col, label_col)

    @api_errors
    def train(
        train_file: str | None,
        test_file: str | None,
        model: str,
        options: Any,
        visitor: str,
        request: gr.Request,
        valid_file: str | None = None,
    ) -> str:
        """Queue a run; returns its name at once. model: a curated backbone (`kobert-demo models`; always allowed),
        or another folder or hub id (where custom models are allowed). options: TrainConfig settings by field name
        (`epochs`, `batch_size`, `early_stopping_patience`, ...; see `kobert-demo train --help`), typed and bounded
        as in the web form; `init_from` names one of the visitor's finished runs to continue training from.
        valid_file (optional, last so that older calls keep working): the data that chooses the kept model
        (default: validation_size of the training file)."""
        model = (model or KOBERT_HUB_ID).strip()
        backbone = model if is_curated(model) else CUSTOM
        if not isinstance(options or {}, dict):
            raise VisitorError("err_options_not_object")
        config = make_config(backbone, model, dict(options or {}))
        address = client_address(request)
        return submit(state, config, train_file, test_file, visitor, address, valid_file=valid_file).name

    @api_errors
    def export(run: str, visitor: str) -> str:
        """The visitor's finished run as a model zip."""
        return export_run(state, run, visitor)

    @api_errors
    def load_model_zip(model_zip: str | None) -> str:
        """Check and keep an exported model zip; returns the `zip:<id>` model name for /predict."""
        if not model_zip:
            raise VisitorError("err_no_model")
        return state.save_zip(model_zip)

    @api_errors
    def predict_csv(model: str, file: str | None) -> str:
        """Predictions for a file of sentences, as a CSV file (text, label, confidence, p_<class>...): the bytes
        `kobert-demo predict --file` writes."""
        return predict_tab.predict_file_for_visitor(state, model, file)

    api = {"api_visibility": "public"}
    buttons[0].click(validate, [file, text_col, label_col], report, api_name="validate", **api)
    train_inputs = [train_file, test_file, model, options, visitor, valid_file]
    buttons[1].click(train, train_inputs, run_name, api_name="train", **api)
    buttons[2].click(export, [run, visitor], out_file, api_name="export", concurrency_limit=1, **api)
    buttons[3].click(load_model_zip, [model_zip], model_ref, api_name="load_model_zip", **api)
    buttons[4].click(
        predict_csv,
        [predict_model, file],
        out_file,
        api_name="predict_file",
        concurrency_id="predict_file",
        concurrency_limit=2,
        **api,
    )
