"""KoBERT Demo web app: `python app.py [--host H] [--port P] [--share]` (a Hugging Face Space runs this file).

GRADIO_SERVER_NAME / GRADIO_SERVER_PORT apply when the flags are not given; KOBERT_DEMO_RUNS sets the runs home.
"""

from __future__ import annotations

import argparse
import signal
from types import FrameType

from kobert_demo.ui import build_app


def _terminate(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (a Space restarting, `kill`) ends the app like Ctrl-C, so the running job is stopped too."""
    raise SystemExit(0)


def main(argv: list[str] | None = None) -> None:
    """Parse the flags, build the app and serve it until interrupted."""
    parser = argparse.ArgumentParser(description="The KoBERT Demo web app.")
    parser.add_argument("--host", help="address to listen on (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    args = parser.parse_args(argv)
    demo = build_app()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share or None)
    finally:
        demo.close()


if __name__ == "__main__":
    main()
