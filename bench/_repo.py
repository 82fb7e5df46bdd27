"""The repository root, put on `sys.path` so that the benchmarks can import `tests`.

Appended, not prepended: `PYTHONPATH` still chooses which FLOps code runs. Import this
before `tests.*` (`_common` does).
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["ROOT"]

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
