"""Files bertbridge reads and writes: model folders and manifests (:mod:`.artifacts`), training
checkpoints (:mod:`.checkpoints`), Hugging Face weight names (:mod:`.weights`), JSON objects,
progress output and the package copy shipped into containers (:mod:`.vendor`). Writes are atomic."""
