"""The PyTorch backend (Hugging Face ``transformers`` models on PyTorch)."""
