"""Features, training to ONNX, the model registry, the inference runtime with provider fallback,
the prediction cache, and the sentiment engine."""
