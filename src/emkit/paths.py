"""Where emkit keeps things on disk.

The cache root (``~/.cache/emkit`` unless ``EMKIT_CACHE`` is set) holds downloaded paper files
and the converted embedded model. Run directories hold everything a study produced.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root; created on first use."""
    root = os.environ.get("EMKIT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emkit"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def mirror_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The local mirror of the paper's files: ``--mirror`` wins over ``EMKIT_UPSTREAM_MIRROR``."""
    value = explicit or os.environ.get("EMKIT_UPSTREAM_MIRROR")
    return Path(value).expanduser().resolve() if value else None
