"""Test helpers for bertbridge and for third-party backends: the backend conformance suite, a tiny
random BERT and toy data made at test time, and a numpy reference of the artifact format.

A backend package runs the contract every backend meets by subclassing the suite in its tests::

    from bertbridge.testing import BackendConformance

    class TestJax(BackendConformance):
        backend = "jax"

(see :mod:`bertbridge.testing.conformance`). Core never imports this package. Importing it imports
neither pytest nor a deep-learning framework; :class:`BackendConformance` (which needs pytest) is
loaded on first access.
"""

from __future__ import annotations

from typing import Any

from bertbridge.testing.tiny import (
    FILLER,
    NEGATIVE,
    POSITIVE,
    SPECIALS,
    TINY_CONFIG,
    VOCAB,
    qa_spec,
    tiny_spec,
    toy_data,
    toy_sentences,
    toy_squad,
    write_random_bert,
    write_tokenizer_folder,
    write_tsv,
)

__all__ = [
    "BackendConformance",
    "FILLER",
    "NEGATIVE",
    "POSITIVE",
    "SPECIALS",
    "TINY_CONFIG",
    "VOCAB",
    "qa_spec",
    "tiny_spec",
    "toy_data",
    "toy_sentences",
    "toy_squad",
    "write_random_bert",
    "write_tokenizer_folder",
    "write_tsv",
]


def __getattr__(name: str) -> Any:
    if name == "BackendConformance":
        from bertbridge.testing.conformance import BackendConformance

        return BackendConformance
    raise AttributeError(f"module 'bertbridge.testing' has no attribute {name!r}")
