"""The exceptions bertbridge raises for problems a user can fix.

Every message is one paragraph that names the thing at fault (file, line,
field, header, backend) and says how to fix it. The CLI prints these messages
without a traceback; anything else reaching the top level is a bug.
"""

from __future__ import annotations


class BertbridgeError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""


class SpecError(BertbridgeError, ValueError):
    """The task spec is malformed: unknown field, wrong type, impossible value."""


class DataError(BertbridgeError, ValueError):
    """A data file cannot be used: missing column, unknown label, empty text, bad bytes."""


class ModelNotFoundError(BertbridgeError, FileNotFoundError):
    """`model.name` is neither a known alias nor a usable local model folder."""


class ArtifactError(BertbridgeError):
    """A saved bertbridge model folder is missing files or has an unreadable manifest."""


class BackendError(BertbridgeError):
    """Base class for backend selection problems."""


class UnknownBackendError(BackendError, LookupError):
    """No backend of that name is registered."""


class UnknownTaskError(SpecError, LookupError):
    """No task of that type is registered."""


class BackendUnavailableError(BackendError, ImportError):
    """The backend is registered but its framework is not installed."""


class NotSupportedError(BackendError, NotImplementedError):
    """The backend exists but cannot do what was asked (task, format, feature)."""


class DistributedError(BertbridgeError):
    """A data-parallel job failed: a worker (named by its rank) died or could not join."""
