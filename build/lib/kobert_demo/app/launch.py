"""Serve the web app: `kobert-demo app`, `python -m kobert_demo app` and `python app.py` (what a Space runs).

GRADIO_SERVER_NAME / GRADIO_SERVER_PORT apply when the flags are not given; KOBERT_DEMO_RUNS sets the runs home.
"""

from __future__ import annotations

import argparse
import signal
from types import FrameType


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The app's flags, shared by app.py and the `app` sub-command."""
    parser.add_argument("--host", help="address to listen on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a Space restarting, `kill`) ends the app like Ctrl-C, so the running job is stopped too."""
    raise SystemExit(0)


def serve(args: argparse.Namespace) -> int:
    """Build the app and serve it until interrupted."""
    from kobert_demo.app.ui import build_app  # here: gradio loads only when the app is served

    demo = build_app()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share or None)
    finally:
        demo.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python app.py [--host H] [--port P] [--share]`."""
    parser = argparse.ArgumentParser(description="The KoBERT Demo web app.")
    add_arguments(parser)
    return serve(parser.parse_args(argv))
