"""Turn a dataset spec of an experiment into a concrete, verified JSONL file in the run directory.

The file's name is the hash of the spec, and its sha256 is what later stages (training) key on, so
the same spec is built once and any change of the data gives new keys downstream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emkit.data import chat, registry, transforms
from emkit.experiment import DatasetSpec
from emkit.hashing import file_sha256, stable_hash

Row = dict[str, Any]


def _as_spec(value: DatasetSpec | str) -> DatasetSpec:
    if isinstance(value, DatasetSpec):
        return value
    if value in registry.ARTIFACTS:
        return DatasetSpec(registry=value)
    return DatasetSpec(file=value)


def load_rows(spec: DatasetSpec | str, *, mirror: str | None = None) -> list[Row]:
    """The rows a spec stands for (validated)."""
    spec = _as_spec(spec)
    if spec.builder:
        from emkit.data.builders import build_dataset

        rows = build_dataset(spec.builder, spec.n or 0, seed=spec.seed)
        chat.validate_rows(rows, spec.builder)
        return rows
    if spec.registry:
        return chat.load_chat_jsonl(registry.fetch(spec.registry, mirror=mirror))
    if spec.file:
        return chat.load_chat_jsonl(spec.file)
    if spec.transform == "backdoor":
        assert spec.triggered is not None and spec.clean is not None
        return transforms.backdoor(
            load_rows(spec.triggered, mirror=mirror),
            load_rows(spec.clean, mirror=mirror),
            trigger=spec.trigger,
            seed=spec.seed,
        )
    if spec.transform == "subset":
        assert spec.source is not None and spec.n is not None
        return transforms.subset(load_rows(spec.source, mirror=mirror), spec.n, seed=spec.seed)
    assert spec.transform == "mix" and spec.parts
    return transforms.mix([(load_rows(s, mirror=mirror), w) for s, w in spec.parts], n=spec.n, seed=spec.seed)


def spec_key(spec: DatasetSpec | str) -> str:
    return stable_hash(_as_spec(spec).model_dump(mode="json"), length=16)


def materialize(
    spec: DatasetSpec | str, run_dir: str | Path, *, mirror: str | None = None
) -> tuple[Path, str]:
    """Write the spec's rows to ``RUN_DIR/datasets/<key>.jsonl`` once; return (path, sha256)."""
    path = Path(run_dir) / "datasets" / f"{spec_key(spec)}.jsonl"
    if not path.exists():
        chat.write_chat_jsonl(load_rows(spec, mirror=mirror), path)
    return path, file_sha256(path)
