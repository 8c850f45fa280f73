"""Progress bars and log lines that do not tear each other apart.

Bars go to stderr and only when it is a terminal (or BERTBRIDGE_PROGRESS=1);
SageMaker's CloudWatch logs get clean ``name=value`` lines instead.
"""

from __future__ import annotations

import os
import sys
from typing import IO, Optional


def enabled() -> bool:
    flag = os.environ.get("BERTBRIDGE_PROGRESS")
    if flag is not None:
        return flag.strip().lower() not in ("0", "false", "no", "off", "")
    return sys.stderr.isatty()


def bar(total: Optional[int], desc: str, unit: str = "it", disable: bool = False):
    """A tqdm bar (a no-op object when progress is disabled, or ``disable``)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=disable or not enabled(), dynamic_ncols=True, leave=False)


def write_line(line: str, stream: Optional[IO[str]] = None) -> None:
    """Print a line above any active bar, flushed (SageMaker reads logs live)."""
    from tqdm.auto import tqdm

    stream = sys.stdout if stream is None else stream

    tqdm.write(line, file=stream)
    stream.flush()
