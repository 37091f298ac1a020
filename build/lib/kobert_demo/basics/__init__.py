"""Torch-free basics: settings, the message catalogue, errors, TrainConfig, events, the one atomic writer, the one
table reader and CSV writer, metrics and run folders. Importable without torch (tests/test_imports.py)."""
