"""The front-ends: the job queue and its training child, the CLI and the Gradio web app (ui/)."""
