import sys

from kobert_demo.app.cli import main

sys.exit(main())
