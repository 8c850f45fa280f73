"""The ONNX Runtime backend: serves ONNX exports (inference only)."""
