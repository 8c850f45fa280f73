"""Data-parallel training: the collective contract (:mod:`.collective`), how a call becomes a job
(:mod:`.data_parallel`) and the local process supervisor (:mod:`.launcher`)."""
