"""Labelled examples from files: csv/tsv/jsonl readers with row-precise errors (:mod:`.readers`),
label maps (:mod:`.labels`) and tokenized TFRecord shards for Pipe mode (:mod:`.tfrecord`)."""
