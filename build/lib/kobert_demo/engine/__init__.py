"""The model engine: encoder families, backbones, tokenizers, the classifier, loading and saving, and the training
loop."""
