"""Fine-tune KoBERT for Korean multi-class text classification: one engine for the CLI, the web app and tests."""

__version__ = "0.1.0"
