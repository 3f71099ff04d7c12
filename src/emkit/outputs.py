"""Every file emkit writes for the user goes through here: checked first, then written atomically.

Why one helper: each verb used to open its output its own way, so a directory given as ``-o``, a
parent that is a file, or an unwritable place ended in a traceback, and a write that failed half
way left a truncated file. Worse, ``data subset s.jsonl -o s.jsonl`` could truncate its own input.
Here every output is written to a temporary file in the target's directory and moved over the
target with :func:`os.replace` only when complete, so the old file (which may be the input) stays
intact until the new one is whole, and a crash never leaves half a file. A target that is a
symlink is resolved first: the file it points to is replaced and the link is kept.

Problems are raised as :class:`~emkit.errors.InputError` naming the path, before any work is done
where the verb checks its outputs up front (:func:`output_file`, :func:`output_dir`).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from emkit.errors import InputError


def _describe(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _first_file_above(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` that is not a directory (a parent that is a file)."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            return None if parent.is_dir() else parent
    return None


def _make_parent(path: Path, what: str) -> None:
    """Create the folder ``path`` will be written in (like ``mkdir -p``), with one clear error."""
    blocker = _first_file_above(path)
    if blocker is not None:
        raise InputError(f"cannot write the {what}: {blocker} is a file, not a folder", where=str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(
            f"cannot create the folder of the {what}: {_describe(exc)}", where=str(path)
        ) from None


def _check_writable_dir(folder: Path, target: Path, what: str) -> None:
    """Create and remove a scratch file in ``folder``: the only test that holds for root, read-only
    mounts and ACLs alike (``os.access`` says yes to root where the kernel then says no)."""
    try:
        fd, scratch = tempfile.mkstemp(dir=folder, prefix=".emkit-write-check.")
    except OSError as exc:
        raise InputError(f"cannot write the {what}: {folder}: {_describe(exc)}", where=str(target)) from None
    os.close(fd)
    os.unlink(scratch)


def _is_sqlite(path: Path) -> bool:
    """Whether ``path`` is a SQLite file: a run's store is never an output (``-o run/emkit.sqlite``)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False


def _nearest_dir(path: Path) -> Path:
    """The nearest existing folder at or above ``path`` (what a ``mkdir -p`` would start from)."""
    return next((p for p in (path, *path.parents) if p.is_dir()), Path("."))


def _refuse_option_like(target: Path, what: str) -> None:
    """Refuse a bare name spelled like an option (``-o --no-such-option``): the shell passed an
    option where the value was missing, and a file named ``--x`` in the working folder is never what
    was meant. With a folder in front (``out/-x``, an absolute path) such a name is taken as given."""
    if len(target.parts) == 1 and target.name.startswith("-"):
        raise InputError(
            f"the {what} {target.name!r} looks like an option (a missing value before it?); "
            "give it with a folder in front (e.g. ./out/NAME) if that name is meant",
            where=str(target),
        )


def output_file(path: str | os.PathLike[str], *, what: str = "output file") -> Path:
    """Check that a file can be written at ``path``; return the path. Creates nothing.

    Refused with one line: a path that is a directory, a path below a file, an unwritable folder.
    Call it before the work, so a bad ``-o`` costs nothing; missing folders are made at write time.
    """
    target = Path(path)
    _refuse_option_like(target, what)
    if target.is_dir():
        raise InputError(f"the {what} is a folder; give a file name", where=str(target))
    blocker = _first_file_above(target)
    if blocker is not None:
        raise InputError(f"cannot write the {what}: {blocker} is a file, not a folder", where=str(target))
    real = Path(os.path.realpath(target))
    if real.is_dir():
        raise InputError(f"the {what} points to a folder; give a file name", where=str(target))
    _check_writable_dir(_nearest_dir(real.parent), target, what)
    if _is_sqlite(real):
        raise InputError(
            f"the {what} is a SQLite database (a run store?); refusing to overwrite it", where=str(target)
        )
    if real.exists() and not os.access(real, os.W_OK):
        raise InputError(f"cannot write the {what}: the file is read-only", where=str(target))
    return target


def output_dir(path: str | os.PathLike[str], *, what: str = "output folder", create: bool = True) -> Path:
    """Check that ``path`` is (or can be created as) a writable folder; return it.

    Refused with one line: a path that is a file, a path below a file, an unwritable place. With
    ``create=False`` nothing is made (a dry run, or a verb whose store creates the folder later):
    the nearest existing folder on the way must then be writable.
    """
    target = Path(path)
    _refuse_option_like(target, what)
    if (target.exists() or target.is_symlink()) and not target.is_dir():
        raise InputError(f"the {what} is a file; give a folder", where=str(target))
    blocker = _first_file_above(target)
    if blocker is not None:
        raise InputError(f"cannot create the {what}: {blocker} is a file, not a folder", where=str(target))
    if not create:
        _check_writable_dir(_nearest_dir(target), target, what)
        return target
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the {what}: {_describe(exc)}", where=str(target)) from None
    _check_writable_dir(target, target, what)
    return target


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, what: str = "output file") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one step.

    For writers that want a file name (pandas, matplotlib). On any error the temporary file is
    removed and the old ``path`` is untouched; an OS error becomes one :class:`InputError` line.
    """
    target = output_file(path, what=what)
    real = Path(os.path.realpath(target))
    _make_parent(real, what)
    try:
        # the target's extension last: pandas and matplotlib pick compression and format by it
        fd, tmp_name = tempfile.mkstemp(dir=real.parent, prefix=f".{real.name}.", suffix=f".tmp{real.suffix}")
    except OSError as exc:
        raise InputError(f"cannot write the {what}: {_describe(exc)}", where=str(target)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if real.exists():  # keep the old file's permission bits, as an in-place write would
            with contextlib.suppress(OSError):
                os.chmod(tmp, real.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        _fsync(tmp)  # the bytes are on disk before the name points at them (power loss, too)
        os.replace(tmp, real)
    except OSError as exc:
        raise InputError(f"cannot write the {what}: {_describe(exc)}", where=str(target)) from None
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(
    path: str | os.PathLike[str], mode: str = "w", *, what: str = "output file", **options: Any
) -> Iterator[IO[Any]]:
    """``open(path, mode)`` that writes atomically (see :func:`atomic_path`); text is UTF-8."""
    if "b" not in mode:
        options.setdefault("encoding", "utf-8")
    with atomic_path(path, what=what) as tmp, open(tmp, mode, **options) as handle:
        yield handle


def write_text(path: str | os.PathLike[str], text: str, *, what: str = "output file") -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "w", what=what) as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes, *, what: str = "output file") -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb", what=what) as handle:
        handle.write(data)
    return Path(path)
