"""Serving: the request/response contract (:mod:`.protocol`, standard library + numpy only), the
SageMaker serving functions (:mod:`.handlers`) and the micro-batching HTTP server (:mod:`.server`)."""
