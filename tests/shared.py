"""The public data and design docs the tests read but never copy: `../shared` beside the repo.

`EVALPIPE_SHARED=/path/to/shared` points elsewhere. Tests that need a file skip with a message
naming the path when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

SHARED = Path(
    os.environ.get("EVALPIPE_SHARED") or Path(__file__).resolve().parents[1].parent / "shared"
).resolve()
DATA = SHARED / "data"
DESIGN = SHARED / "design"


def absent(path: Path, what: str) -> str:
    """The skip reason for a missing shared file or folder."""
    return f"{what} not found at {path} (shared data not mounted; set EVALPIPE_SHARED)"
