"""Serving a trained classifier: prediction, the backend choice (torch, bf16, ONNX Runtime fp32/int8),
explanations, export and bulk prediction."""
