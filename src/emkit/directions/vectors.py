"""Misalignment directions as values and as files: what collection writes and steering, ablation
and screening read.

Why one type and one file format: the five verbs (collect, compare, steer, ablate, screen) run
apart, often days apart and on other machines; a direction must carry the layers it belongs to, the
residual stream's typical norm there (steering scales by it) and which model and data it came from,
so a file of the wrong model or width is refused in one line instead of silently broadcasting.

The file is safetensors (no pickle, readable by any tool): tensors ``directions`` (float32,
``layers x width``: the raw ``mean(misaligned) - mean(aligned)``, not unit length), ``layers``
(int64), ``typical_norm`` (float32 per layer: the mean norm of the response activations there) and
the string metadata ``emkit`` (JSON: model, fingerprint, key, source, counts, per-layer reliability).
Files the collection writes also hold ``response_means`` (float32, ``responses x layers x width``:
each response's mean activation) and ``response_labels`` (int8, 0 aligned / 1 misaligned), what a
comparison's bootstrap resamples; files without them load, and a comparison says it has no
interval for them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from emkit.errors import EmkitError

FORMAT = "emkit-directions/1"
RESPONSE_TENSORS = ("response_means", "response_labels")  # optional: older files lack them


def with_responses(directions: DirectionSet, means: np.ndarray, n_aligned: int) -> DirectionSet:
    """``directions`` carrying the per-response means it came from (the first ``n_aligned`` rows
    aligned, the rest misaligned)."""
    labels = np.zeros(len(means), dtype=np.int8)
    labels[n_aligned:] = 1
    return replace(directions, response_means=means, response_labels=labels)


def has_responses(path: str | Path) -> bool:
    """Whether a directions file holds the per-response means (read from its header only); an
    unreadable file does not (the caller then treats it as not stored and writes it again)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            return set(RESPONSE_TENSORS) <= set(handle.keys())
    except (SafetensorError, OSError, ValueError):
        return False


@dataclass(frozen=True)
class DirectionSet:
    """Per-layer directions of one model: ``vectors[j]`` belongs to layer ``layers[j]``."""

    layers: tuple[int, ...]
    vectors: np.ndarray  # (len(layers), width) float32, raw mean differences
    typical_norm: np.ndarray  # (len(layers),) float32
    model: str = ""
    fingerprint: str = ""
    meta: Mapping[str, Any] = field(default_factory=dict)
    # The per-response means the vectors came from (responses x layers x width float32) and each
    # response's label (0 aligned, 1 misaligned), when kept: a comparison's bootstrap needs them.
    response_means: np.ndarray | None = None
    response_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        self._check_responses()
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

    def _check_responses(self) -> None:
        if (self.response_means is None) != (self.response_labels is None):
            raise EmkitError("directions: response means and labels come together")
        if self.response_means is None:
            return
        means = np.asarray(self.response_means, dtype=np.float32)
        labels = np.asarray(self.response_labels, dtype=np.int8)
        shape = (len(self.layers), np.shape(self.vectors)[-1])
        if means.ndim != 3 or means.shape[1:] != shape or labels.shape != (means.shape[0],):
            raise EmkitError(
                f"directions: response means {means.shape} and labels {labels.shape} do not fit "
                f"{shape[0]} layers of width {shape[1]}"
            )
        if not set(np.unique(labels)) <= {0, 1}:
            raise EmkitError("directions: response labels must be 0 (aligned) or 1 (misaligned)")
        object.__setattr__(self, "response_means", means)
        object.__setattr__(self, "response_labels", labels)

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
    tensors = {
        "directions": directions.vectors,
        "layers": np.asarray(directions.layers, dtype=np.int64),
        "typical_norm": directions.typical_norm,
    }
    if directions.response_means is not None and directions.response_labels is not None:
        tensors["response_means"] = directions.response_means
        tensors["response_labels"] = directions.response_labels
    save_file(
        tensors,
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
            wanted = ("directions", "layers", "typical_norm", *RESPONSE_TENSORS)
            tensors = {name: handle.get_tensor(name) for name in wanted if name in names}
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
            response_means=tensors.get("response_means"),
            response_labels=tensors.get("response_labels"),
        )
    except EmkitError as exc:
        raise EmkitError(f"{path}: {exc}") from None
