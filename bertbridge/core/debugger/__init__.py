"""SageMaker Debugger: attention capture during training (:mod:`.capture`), built-in rules
(:mod:`.rules`, smdebug imported lazily) and offline attention views (:mod:`.attention_view`)."""
