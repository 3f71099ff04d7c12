"""Where emkit keeps things on disk.

The cache root (``~/.cache/emkit`` unless ``EMKIT_CACHE`` is set) holds downloaded paper files
and the converted embedded model. Run directories hold everything a study produced.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root; created on first use.

    An unusable root (a file, a folder below a file, an unwritable place) is one clear error that
    names it and the variable that chose it, instead of an OSError deep inside a download.
    """
    from emkit.errors import EmkitError
    from emkit.outputs import output_dir

    explicit = os.environ.get("EMKIT_CACHE")
    root = explicit or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emkit"
    )
    try:
        return output_dir(Path(root), what="cache folder")
    except EmkitError as exc:
        source = "EMKIT_CACHE" if explicit else "the default cache (set EMKIT_CACHE to move it)"
        raise EmkitError(f"{exc} ({source})") from None


def mirror_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The local mirror of the paper's files: ``--mirror`` wins over ``EMKIT_UPSTREAM_MIRROR``."""
    value = explicit or os.environ.get("EMKIT_UPSTREAM_MIRROR")
    return Path(value).expanduser().resolve() if value else None
