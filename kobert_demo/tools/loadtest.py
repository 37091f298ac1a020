"""`python -m kobert_demo.tools.loadtest`: many gradio_client visitors predicting while a job trains.

Bounded and local: the app is served on 127.0.0.1 only, every visitor sends a fixed number of requests, and the
whole test stops by itself. Prints requests/s, p50/p95 latency, the failures (there should be none) and the job's
training speed just before and during the load. `--idle-training` instead times training jobs on an idle queue,
yielding to visitors (jobs.py) and not, in turns: what the yielding costs when nobody predicts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from kobert_demo.app.queue import JobQueue
from kobert_demo.app.training_child import SERVING_FRESH_S
from kobert_demo.basics.runs import Run
from kobert_demo.tools.driving import clone_file, free_port, wait_for_state

SENTENCES = ["정말 재미있어요", "최악의 영화, 시간 아깝다", "그냥 그랬어요", "배우 연기가 좋았다", "지루하고 뻔함"]
STATES_DONE = ("done", "stopped", "failed", "interrupted")
CONNECT_TIMEOUT_S = 120
BUSY_BATCH = 8  # the busy job's batch size: small steps, so that the speed counts many of them
BEFORE_S = 4.0  # how long the busy job's speed is taken for before the load


def load(url: str, model: str, visitors: int, requests_each: int, deadline_s: float) -> dict:
    """`visitors` threads, each its own gradio_client.Client, each sending `requests_each` /predict calls."""
    from gradio_client import Client

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(visitors)
    stop_at = time.time() + deadline_s

    def visitor(number: int) -> None:
        try:
            # A visitor's page load (config, API info) waits like its requests do: gradio_client's default 5 s read
            # timeout failed 15-34 of 50 connects on a 2-core Intel machine whose cores the training job held.
            # ssl_verify=False: the URL is plain http, yet gradio_client builds a certificate-checking SSL context for
            # every request's event stream, 70-100 ms of CPU a request on that machine (7 ms without), which the
            # visitors, run here beside the server, would take from it.
            client = Client(url, verbose=False, ssl_verify=False, httpx_kwargs={"timeout": CONNECT_TIMEOUT_S})
        except Exception as error:  # a refused connection is a failed request too
            with lock:
                failures.append(f"connect: {type(error).__name__}: {error}")
            start_line.abort()
            return
        with contextlib.suppress(threading.BrokenBarrierError):
            start_line.wait(timeout=120)
        for i in range(requests_each):
            if time.time() > stop_at:
                with lock:
                    failures.append("deadline reached before all requests were sent")
                return
            sent = time.perf_counter()
            try:
                result = client.predict(model, SENTENCES[(number + i) % len(SENTENCES)], api_name="/predict")
                assert abs(sum(result["confidences"].values()) - 1) < 1e-3, result
            except Exception as error:
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")
                continue
            with lock:
                latencies.append(time.perf_counter() - sent)

    threads = [threading.Thread(target=visitor, args=(n,), daemon=True) for n in range(visitors)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(deadline_s + 120)
    wall = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {
        "visitors": visitors,
        "requests": visitors * requests_each,
        "ok": len(latencies),
        "failed": len(failures),
        "failures": failures[:5],
        "requests_per_s": round(len(latencies) / wall, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p95_ms": round(float(np.percentile(ms, 95)), 1) if len(ms) else None,
        "wall_s": round(wall, 1),
    }


def last_step(run: Run) -> tuple[int, float]:
    """The run's latest logged step: (step, seconds since training began); (0, 0.0) before its first. Read from its
    log, since its summary takes a step at most every few seconds."""
    steps = [event for event in run.events() if event.type == "step"]
    return (steps[-1].step, steps[-1].elapsed) if steps else (0, 0.0)


def sentences_per_s(first: tuple[int, float], last: tuple[int, float], batch_size: int) -> float | None:
    """Training sentences per second between two (step, elapsed) points of one run; None without two steps."""
    steps, seconds = last[0] - first[0], last[1] - first[1]
    return round(steps * batch_size / seconds, 1) if steps > 0 and seconds > 0 else None


def run(
    train_file: Path, visitors: int = 50, requests_each: int = 4, home: Path | None = None, before_s: float = BEFORE_S
) -> dict:
    """Serve the app, train a model to predict with, start a second job, and load the app while it trains; the
    second job's training speed is taken over before_s seconds without visitors, then during the load."""
    from gradio_client import Client, handle_file

    from kobert_demo.app.ui import build_app

    home = home or Path(tempfile.mkdtemp(prefix="kobert-load-"))
    demo = build_app(home)
    _, url, _ = demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        visitor = "load-test-visitor-0123456789abcdef"
        sample = handle_file(str(train_file))
        model = client.predict(sample, None, "tiny", {"epochs": 1}, visitor, api_name="/train")
        wait_for_state(client, model, visitor, STATES_DONE, timeout=600)
        busy = client.predict(
            handle_file(str(train_file)), None, "tiny",
            {"epochs": 50, "batch_size": BUSY_BATCH}, visitor, api_name="/train",
        )  # fmt: skip
        wait_for_state(client, busy, visitor, ("running",), timeout=300)
        client.predict(model, SENTENCES[0], api_name="/predict")  # the model loads once, before the clock starts
        training = Run(home / busy)
        if before_s:
            time.sleep(SERVING_FRESH_S)  # the warm-up prediction's mark goes stale: the job trains on every core
        quiet = last_step(training)
        time.sleep(before_s)
        loaded = last_step(training)
        result = load(url, model, visitors, requests_each, deadline_s=600)
        result["train_sentences_per_s_before"] = sentences_per_s(quiet, loaded, BUSY_BATCH)
        result["train_sentences_per_s_during"] = sentences_per_s(loaded, last_step(training), BUSY_BATCH)
        result["job_state_after"] = client.predict(busy, visitor, api_name="/status")["state"]
        client.predict(busy, visitor, api_name="/stop")
        wait_for_state(client, busy, visitor, STATES_DONE, timeout=120)
        result["cpu_cores"] = os.cpu_count()
        return result
    finally:
        demo.close()


def idle_training(train_file: Path, rounds: int = 2, epochs: int = 2, home: Path | None = None) -> dict:
    """Train the tiny model on an idle queue `rounds` times yielding to visitors and as many times not, in turns;
    each job's training sentences/s from its logged steps (its first step, which warms up, left out)."""
    from kobert_demo.basics.config import TrainConfig

    home = home or Path(tempfile.mkdtemp(prefix="kobert-idle-"))
    speeds: dict[str, list[float | None]] = {"yielding": [], "not_yielding": []}
    for _ in range(rounds):
        for name, yield_cpu in (("yielding", True), ("not_yielding", False)):
            queue = JobQueue(home / name, poll_s=0.1, yield_cpu=yield_cpu).start()
            try:
                job = queue.submit(TrainConfig(model="tiny", epochs=epochs, batch_size=BUSY_BATCH), train_file)
                while not job.status().finished:
                    time.sleep(0.2)
            finally:
                queue.close()
            steps = [(event.step, event.elapsed) for event in job.events() if event.type == "step"]
            speeds[name].append(sentences_per_s(steps[0], steps[-1], BUSY_BATCH) if steps else None)
    result: dict = {"rounds": rounds, "epochs": epochs, "cpu_cores": os.cpu_count()}
    for name, values in speeds.items():
        result[f"{name}_sentences_per_s"] = values
        measured = [value for value in values if value]
        result[f"{name}_median"] = round(float(np.median(measured)), 1) if measured else None
    if result["yielding_median"] and result["not_yielding_median"]:
        result["yielding_cost_pct"] = round(100 * (1 - result["yielding_median"] / result["not_yielding_median"]), 1)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kobert_demo.tools.loadtest", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--train-file", help="labelled rows the training jobs use (default, in a clone: tests/data/nsmc/train.tsv)"
    )
    parser.add_argument("--visitors", type=int, default=50)
    parser.add_argument("--requests", type=int, default=4, help="requests per visitor")
    parser.add_argument(
        "--idle-training", action="store_true",
        help="no visitors: time training jobs that yield to visitors and jobs that do not, in turns",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="--idle-training: jobs of each kind")
    parser.add_argument("--epochs", type=int, default=2, help="--idle-training: epochs of each job")
    args = parser.parse_args(argv)
    args.train_file = args.train_file or clone_file("train.tsv")
    if args.train_file is None:
        parser.error("--train-file is needed: name a TSV or CSV of labelled rows (only a clone has tests/data)")
    if args.idle_training:
        print(json.dumps(idle_training(Path(args.train_file), args.rounds, args.epochs), indent=2))
        return 0
    result = run(Path(args.train_file), args.visitors, args.requests)
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
