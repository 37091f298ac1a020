"""Driving the running app from code (the screenshots tool, the load test, the tests): one copy of each helper."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

# NSMC slices that ship with a clone; the README's figures pass the full files (bench's --data, --accuracy-test).
CLONE_NSMC = Path(__file__).resolve().parents[2] / "tests" / "data" / "nsmc"

# Headless Chromium in containers and CI: no sandbox (no user namespaces), no GPU, no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip


def clone_file(name: str) -> str | None:
    """A file of the NSMC slices in a clone of the repo; None where there is no clone (an installed package)."""
    path = CLONE_NSMC / name
    return str(path) if path.is_file() else None


def free_port() -> int:
    """A TCP port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_state(client: Any, run: str, visitor: str, states: tuple[str, ...], timeout: float = 300) -> dict:
    """Poll the app's /status (through a gradio_client.Client) until the run reaches one of states."""
    deadline = time.time() + timeout
    status: dict = {}
    while time.time() < deadline:
        status = client.predict(run, visitor, api_name="/status")
        if status["state"] in states:
            return status
        time.sleep(0.5)
    raise TimeoutError(f"run {run} did not reach {states} within {timeout:.0f} s: {status}")
