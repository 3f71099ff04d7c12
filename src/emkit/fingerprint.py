"""What identifies a model's weights, for the keys of the results it produces.

Why: a stored answer (or probe score) must change key when the weights that produced it change. A
model name alone does not say that: ``hf/X@models/adapter`` names a folder whose content can be
retrained in place. So the identity of a model with a LoRA adapter is the sha256 of the adapter's
files (``adapter_config.json`` and its weights); a model without an adapter is identified by its
name (a hub id, an API model, the embedded model), which is all emkit can know about it.

The digest of an adapter is computed once per (file, size, mtime): engines compute it when they
open, and planning (which runs before any engine) computes the same value from the same files.

The name is not all that picks the outputs, though: a local model loaded in another ``dtype``
gives other tokens and logprobs, so an explicit dtype is part of the fingerprint too (no dtype adds
nothing, so keys made without one are the same as before). An OpenAI-compatible endpoint is NOT
part of it: the same model behind a restarted server (another port, a proxy) must not be paid for
again; serve two checkpoints under two model names.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from emkit.engines.registry import find_backend
from emkit.hashing import file_sha256, stable_hash

# The files of a peft adapter folder that shape its outputs (tokenizer files copied there do not).
_ADAPTER_FILES = ("adapter_config.json",)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _serves_weights(scheme: str) -> bool:
    """Whether a scheme's outputs come from weights emkit names: it takes adapters, and a dtype.

    Read from the backend registry; a name of no registered scheme (a test engine's) has neither.
    """
    entry = find_backend(scheme)
    return entry is not None and entry.adapters


def _adapter_path(name: str, base_dir: str | os.PathLike[str] | None) -> Path | None:
    scheme, _, rest = name.partition("/")
    _, at, adapter = rest.partition("@")
    if not _serves_weights(scheme) or not at or not adapter:
        return None
    path = Path(adapter).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return path


@lru_cache(maxsize=256)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    if path.endswith(".json"):
        return _config_digest(path)
    return file_sha256(path)


def _config_digest(path: str) -> str:
    """The adapter config's content, not its bytes: peft writes ``target_modules`` (a set) in an
    order that changes from process to process (measured: the same training in a Ray worker and
    locally gave the same weights and two orders), so lists of names are compared sorted."""
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError):
        return file_sha256(path)

    def canonical(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: canonical(v) for k, v in value.items()}
        if isinstance(value, list):
            items = [canonical(v) for v in value]
            return sorted(items) if all(isinstance(v, str) for v in items) else items
        return value

    return stable_hash({"adapter_config": canonical(config)}, length=64)


def adapter_digest(folder: str | os.PathLike[str]) -> str | None:
    """sha256 over the adapter's config and weight files (names and contents); None if absent."""
    folder = Path(folder)
    if not (folder / "adapter_config.json").is_file():
        return None
    parts = []
    for entry in sorted(folder.iterdir()):
        if entry.is_file() and (entry.name in _ADAPTER_FILES or entry.suffix in _WEIGHT_SUFFIXES):
            stat = entry.stat()
            parts.append([entry.name, _file_digest(str(entry.resolve()), stat.st_size, stat.st_mtime_ns)])
    return stable_hash({"adapter_files": parts}, length=32)


def serving_options(name: str, *, dtype: str | None = None) -> dict[str, str]:
    """The options besides the name that change what ``name`` answers (see the module docstring)."""
    scheme = str(name).partition("/")[0]
    return {"dtype": str(dtype)} if dtype and _serves_weights(scheme) else {}


def model_fingerprint(
    name: str,
    *,
    base_dir: str | os.PathLike[str] | None = None,
    dtype: str | None = None,
) -> str:
    """The weights behind ``name`` (:func:`weights_fingerprint`) plus the serving options that
    change its outputs (:func:`serving_options`), as ``<weights>`` or ``<weights>+<hash>``."""
    weights = weights_fingerprint(name, base_dir=base_dir)
    extra = serving_options(name, dtype=dtype)
    return f"{weights}+{stable_hash(extra, length=16)}" if extra else weights


def weights_fingerprint(name: str, *, base_dir: str | os.PathLike[str] | None = None) -> str:
    """The identity of the weights behind ``name``: ``adapter:<sha>`` or ``name:<hash of the name>``.

    A relative adapter path is resolved against ``base_dir`` (a pipeline's run dir), else the
    working directory. An adapter folder that does not exist (yet) gives ``absent:<path>``: no
    stored result can carry that key, so nothing is wrongly reused before the adapter is trained.
    """
    path = _adapter_path(str(name), base_dir)
    if path is None:
        return "name:" + stable_hash({"model": str(name)}, length=16)
    digest = adapter_digest(path)
    if digest is None:
        return "absent:" + stable_hash({"adapter": str(path)}, length=16)
    return "adapter:" + digest


def engine_fingerprint(engine: object) -> str:
    """The fingerprint an engine computed when it opened, else one derived from its name."""
    value = getattr(engine, "fingerprint", None)
    return value if isinstance(value, str) and value else model_fingerprint(getattr(engine, "name", ""))
