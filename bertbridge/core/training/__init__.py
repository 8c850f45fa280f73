"""The framework-neutral training loop (:mod:`.loop`) and the run around it shared by every task (:mod:`.run`)."""
