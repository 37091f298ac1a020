"""KoBERT Demo web app: `python app.py [--host H] [--port P] [--share]` (a Hugging Face Space runs this file).

The same as `kobert-demo app`; see kobert_demo/launch.py.
"""

from kobert_demo.app.launch import main

if __name__ == "__main__":
    raise SystemExit(main())
