"""Where emkit keeps things on disk.

The cache root (``~/.cache/emkit`` unless ``EMKIT_CACHE`` is set) holds downloaded paper files
and the converted embedded model. Run directories hold everything a study produced.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


def cache_root() -> Path:
    """Where the cache root is, created or not (a dry run looks for files there, creating nothing)."""
    explicit = os.environ.get("EMKIT_CACHE")
    return Path(
        explicit or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "emkit")
    )


def cache_dir() -> Path:
    """The cache root; created on first use.

    An unusable root (a file, a folder below a file, an unwritable place) is one clear error that
    names it and the variable that chose it, instead of an OSError deep inside a download.
    """
    from emkit.errors import EmkitError
    from emkit.outputs import output_dir

    explicit = os.environ.get("EMKIT_CACHE")
    root = cache_root()
    try:
        return output_dir(root, what="cache folder")
    except EmkitError as exc:
        source = "EMKIT_CACHE" if explicit else "the default cache (set EMKIT_CACHE to move it)"
        raise EmkitError(f"{exc} ({source})") from None


def mirror_dir(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The local mirror of the paper's files: ``--mirror`` wins over ``EMKIT_UPSTREAM_MIRROR``."""
    value = explicit or os.environ.get("EMKIT_UPSTREAM_MIRROR")
    return Path(value).expanduser().resolve() if value else None


# -- names that become parts of paths -------------------------------------------------------------
# A name from an experiment file (a group, say) becomes a folder name under the run directory. Only
# a conservative alphabet is accepted, so that no name can climb out (``..``, ``/``), be absolute,
# hide (leading dot), carry control characters or NUL, collide on case-insensitive or Windows file
# systems (reserved device names), or be read as markup/mathtext by the report's plots (``$``).
MAX_NAME_LENGTH = 64
_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9_-])?")
_RESERVED = frozenset(
    {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
)


def check_name(value: str) -> str:
    """``value`` unchanged when it is safe as one path component, else ValueError saying why."""
    if not isinstance(value, str) or not value:
        raise ValueError("a name must not be empty (it becomes part of a file path)")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"a name must be at most {MAX_NAME_LENGTH} characters (got {len(value)})")
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a safe name: use letters, digits, '.', '_' and '-', starting with a "
            "letter or digit and not ending with '.' (it becomes part of a file path)"
        )
    if value.split(".")[0].lower() in _RESERVED:
        raise ValueError(f"{value!r} is a reserved device name on some systems; choose another name")
    return value


def inside(root: str | os.PathLike[str], *parts: str | os.PathLike[str]) -> Path:
    """``root/parts...``, refused (EmkitError) unless it resolves inside ``root``.

    The last line of defence behind :func:`check_name`: every path a stage builds under the run
    directory from stored or user-given parts goes through here, so no name or stored model
    reference (``@models/../../x``) can make emkit write or load outside the run directory.
    """
    from emkit.errors import EmkitError

    base = Path(root)
    path = base.joinpath(*parts)
    resolved_root = base.resolve()
    resolved = path.resolve()
    if resolved != resolved_root and not resolved.is_relative_to(resolved_root):
        shown = "/".join(str(p) for p in parts)
        raise EmkitError(f"{shown!r} would lie outside the run directory {base}; refusing to use it")
    return path
