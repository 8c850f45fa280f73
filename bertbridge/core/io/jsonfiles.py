"""Reading optional JSON-object files (configs beside models, SageMaker's config files)."""

from __future__ import annotations

import json
from pathlib import Path

from bertbridge.core.errors import BertbridgeError


def read_json_object(path: Path, error: type[BertbridgeError], fix: str) -> dict:
    """The JSON object in ``path``; {} when the file is missing or holds no object.
    Unreadable JSON raises ``error`` naming the file, the problem and ``fix``."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc}); {fix}") from None
    return data if isinstance(data, dict) else {}
