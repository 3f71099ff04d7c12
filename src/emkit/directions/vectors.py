"""Misalignment directions as values and as files: what collection writes and steering, ablation
and screening read.

Why one type and one file format: the five verbs (collect, compare, steer, ablate, screen) run
apart, often days apart and on other machines; a direction must carry the layers it belongs to, the
residual stream's typical norm there (steering scales by it) and which model and data it came from,
so a file of the wrong model or width is refused in one line instead of silently broadcasting.

The file is safetensors (no pickle, readable by any tool): tensors ``directions`` (float32,
``layers x width``: the raw ``mean(misaligned) - mean(aligned)``, not unit length), ``layers``
(int64), ``typical_norm`` (float32 per layer: the mean norm of the response activations there) and
the string metadata ``emkit`` (JSON: model, fingerprint, key, source, counts).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emkit.errors import EmkitError

FORMAT = "emkit-directions/1"


@dataclass(frozen=True)
class DirectionSet:
    """Per-layer directions of one model: ``vectors[j]`` belongs to layer ``layers[j]``."""

    layers: tuple[int, ...]
    vectors: np.ndarray  # (len(layers), width) float32, raw mean differences
    typical_norm: np.ndarray  # (len(layers),) float32
    model: str = ""
    fingerprint: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        vectors = np.asarray(self.vectors, dtype=np.float32)
        norms = np.asarray(self.typical_norm, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(self.layers):
            raise EmkitError(
                f"directions: {vectors.shape} vectors for {len(self.layers)} layers (want layers x width)"
            )
        if norms.shape != (len(self.layers),):
            raise EmkitError(f"directions: {norms.shape} typical norms for {len(self.layers)} layers")
        if not (np.isfinite(vectors).all() and np.isfinite(norms).all()):
            raise EmkitError("directions: the vectors or norms hold NaN or inf")
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "typical_norm", norms)
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))

    @property
    def width(self) -> int:
        return int(self.vectors.shape[1])

    def norms(self) -> np.ndarray:
        return np.linalg.norm(self.vectors, axis=1)

    def unit(self, layer: int) -> np.ndarray:
        """The unit direction at ``layer`` (a zero vector stays zero)."""
        v = self.vectors[self.index(layer)]
        n = float(np.linalg.norm(v))
        return v / n if n > 0 else v

    def index(self, layer: int) -> int:
        try:
            return self.layers.index(layer)
        except ValueError:
            raise EmkitError(
                f"directions: no direction for layer {layer} (this set has layers "
                f"{', '.join(map(str, self.layers))})"
            ) from None

    def check_width(self, width: int, what: str) -> None:
        """Refuse a direction of another model's width, naming both."""
        if width != self.width:
            raise EmkitError(
                f"directions: width {self.width} (from {self.model or 'unknown model'}) does not fit "
                f"{what}, whose residual stream is {width} wide"
            )


def save_directions(path: str | Path, directions: DirectionSet) -> Path:
    """Write ``directions`` as safetensors (atomically: a temporary file renamed into place)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "model": directions.model,
        "fingerprint": directions.fingerprint,
        **dict(directions.meta),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(
        {
            "directions": directions.vectors,
            "layers": np.asarray(directions.layers, dtype=np.int64),
            "typical_norm": directions.typical_norm,
        },
        str(tmp),
        metadata={"emkit": json.dumps(meta, sort_keys=True)},
    )
    tmp.replace(path)
    return path


def load_directions(path: str | Path) -> DirectionSet:
    """Read a file :func:`save_directions` wrote; anything else is one clear error naming the file."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise EmkitError(f"{path}: no such directions file")
    try:
        with safe_open(str(path), framework="numpy") as handle:
            meta = json.loads((handle.metadata() or {}).get("emkit", "{}"))
            names = set(handle.keys())
            missing = {"directions", "layers", "typical_norm"} - names
            if missing or meta.get("format") != FORMAT:
                raise EmkitError(
                    f"{path}: not an emkit directions file (missing {', '.join(sorted(missing)) or 'format'})"
                )
            tensors = {name: handle.get_tensor(name) for name in ("directions", "layers", "typical_norm")}
    except (SafetensorError, OSError, ValueError) as exc:
        raise EmkitError(f"{path}: not a readable safetensors file ({exc})") from None
    model = str(meta.pop("model", ""))
    fingerprint = str(meta.pop("fingerprint", ""))
    meta.pop("format", None)
    try:
        return DirectionSet(
            tuple(int(x) for x in tensors["layers"]),
            tensors["directions"],
            tensors["typical_norm"],
            model=model,
            fingerprint=fingerprint,
            meta=meta,
        )
    except EmkitError as exc:
        raise EmkitError(f"{path}: {exc}") from None
