"""Directions in the run store: a record per model and data, its vectors in a safetensors file beside.

Why a record and a file: the record (per-layer norm, reliability and its interval, the counts) is
what the report and a plan read, small and typed (:class:`~emkit.store_records.DirectionsRecord`);
the vectors are ``layers x width`` floats that steering, ablation and screening load, and any tool
reads safetensors. The key hashes everything that shapes the vectors (the model's fingerprint, which
names its adapter and weights; the data's content hash; the layer set; the resampling), so a stored
key is never recomputed and an edit recomputes exactly what changed. The file is written first and
the record last: a kill in between leaves no record, and the rerun writes both again.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emkit.directions.vectors import DirectionSet, has_responses, load_directions, save_directions
from emkit.errors import EmkitError
from emkit.hashing import stable_hash
from emkit.paths import inside
from emkit.store_records import DirectionsRecord

if TYPE_CHECKING:
    from emkit.directions.compute import DirectionResult
    from emkit.store import RunStore

FOLDER = "directions"


def layer_key(layers: str | Sequence[int] | None) -> Any:
    """A layer set as it enters a key (a list sorted and without repeats; text as written)."""
    if layers is None:
        return "all"
    if isinstance(layers, str):
        return layers.replace(" ", "")
    return sorted({int(x) for x in layers})


def direction_key(
    model: str,
    fingerprint: str,
    data_hash: str,
    layers: str | Sequence[int] | None,
    resamples: int,
    seed: int,
) -> str:
    """The key of one model's directions from one data set."""
    return stable_hash(
        {
            "directions": model,
            "fingerprint": fingerprint,
            "data": data_hash,
            "layers": layer_key(layers),
            "resamples": resamples,
            "seed": seed,
        }
    )


def vectors_path(run_dir: str | Path, key: str) -> Path:
    return inside(Path(run_dir), FOLDER, f"{key}.safetensors")


def stored_directions(store: RunStore, key: str) -> DirectionsRecord | None:
    """The record under ``key`` when its vectors file is there too, with the per-response means
    a comparison's interval resamples (else: not done; a file written before they were kept is
    recomputed once, to the same vectors)."""
    record = store.record_of(DirectionsRecord, key)
    path = Path(store.run_dir) / record.file if record is not None else None
    if record is None or path is None or not path.is_file() or not has_responses(path):
        return None
    return record


def save_result(
    store: RunStore,
    key: str,
    result: DirectionResult,
    *,
    source: str,
    data_hash: str,
    group: str | None = None,
    seed: int | None = None,
) -> DirectionsRecord:
    """Write the vectors file, then the record (see the module's docstring for why in that order)."""
    directions = result.directions
    path = vectors_path(store.run_dir, key)
    save_directions(path, directions)
    value = {
        "model": directions.model,
        "group": group,
        "seed": seed,
        "fingerprint": directions.fingerprint,
        "source": source,
        "data_hash": data_hash,
        "file": str(path.relative_to(Path(store.run_dir))),
        "split_seed": int(directions.meta.get("split_seed", 0)),
        **{k: v for k, v in result.summary().items()},
    }
    store.put_record(DirectionsRecord.KIND, key, value)
    return DirectionsRecord.model_validate(value)


def load_stored(store: RunStore, record: DirectionsRecord) -> DirectionSet:
    """The vectors a record names (its file, relative to the run dir)."""
    path = Path(store.run_dir) / record.file
    if not path.is_file():
        raise EmkitError(f"{store.run_dir}: directions file {record.file} is missing (rerun to rebuild it)")
    return load_directions(path)


def record_label(record: DirectionsRecord) -> str:
    """A record's name for people: its group (and seed), else its model (a fine-tune's model id
    is an adapter folder, which says nothing to a reader)."""
    label = record.group or record.model
    return f"{label}/seed{record.seed}" if record.seed is not None else label


def all_stored(store: RunStore) -> list[tuple[str, DirectionsRecord]]:
    """Every directions record of a run, oldest first."""
    return store.records_of(DirectionsRecord)
