"""Text to model inputs: the fast tokenizer (:mod:`.tokenize`) and padding-aware batching (:mod:`.batching`)."""
