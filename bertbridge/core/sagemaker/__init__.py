"""SageMaker: script mode inside the container (:mod:`.scriptmode`), the same job on this machine
(:mod:`.local`), launching training (:mod:`.launch`) and endpoints (:mod:`.deploy`) with SDK v3."""
