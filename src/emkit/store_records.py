"""The typed records of the run store: one pydantic model per kind of the ``records`` table.

Why: the ``records(kind, key, value JSON)`` table holds configs, stage completions, judge runs,
training summaries and more, and their shape used to exist only in the code that wrote them. Here
each kind has one model, registered by kind (:func:`register_record`), and
:meth:`emkit.store.RunStore.put_record` / ``get_record`` / ``records`` validate every value
against it (:func:`encode_record` on write, :func:`check_record` on read).

The rules, so that no stored byte changes and no old run dir stops opening:
- A value is stored exactly as its writer gave it (sorted JSON, redacted); the model only checks
  it. ``get_record`` returns the stored dict; :meth:`~emkit.store.RunStore.record_of` returns the
  model, with defaults for fields added later.
- What is checked is the JSON text as stored (so a ``Path`` the writer passed is a string here).
- Kinds with a fixed shape (``CLOSED``) refuse an unknown field on WRITE (a typo or an addition
  the model does not know fails at the writer, in its tests) but keep one on READ (a store written
  by another emkit version still opens). Kinds that carry arbitrary outputs (a stage's outputs, a
  hook's values, an experiment's config) accept any extra field.
- A kind with no model (a script's own notes) is any JSON object.
- A stored value that does not validate is one error naming the run store, the kind and the key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator

from emkit.errors import EmkitError
from emkit.questions import Question

CONFIG_KIND = "config"
STAGE_KIND = "stage"
JUDGE_RUN_KIND = "judge_run"
TRAIN_KIND = "train"
DYNAMICS_KIND = "dynamics"
FT_JOB_KIND = "ft_job"
QUESTION_KIND = "question"
MIGRATION_KIND = "migration"
BATCH_KIND = "batch"
BENCHMARK_KIND = "benchmark"
DIRECTIONS_KIND = "directions"

_WRITE = "write"  # the validation context of a write (see StoreRecord._closed_on_write)


class StoreRecord(BaseModel):
    """A record's value. Subclasses set ``CLOSED = True`` when their writer has a fixed shape."""

    model_config = ConfigDict(extra="allow")
    KIND: ClassVar[str] = ""
    CLOSED: ClassVar[bool] = False

    @model_validator(mode="before")
    @classmethod
    def _closed_on_write(cls, data: Any, info: ValidationInfo) -> Any:
        """On write, a closed record refuses fields its model does not name (kept on read)."""
        if cls.CLOSED and isinstance(data, dict) and info.context and info.context.get(_WRITE):
            known = {f.alias or name for name, f in cls.model_fields.items()} | set(cls.model_fields)
            unknown = sorted(set(data) - known)
            if unknown:
                raise ValueError(
                    f"unknown field(s) {', '.join(unknown)} (name them in {cls.__module__}.{cls.__name__})"
                )
        return data


R = TypeVar("R", bound=StoreRecord)
RECORD_MODELS: dict[str, type[StoreRecord]] = {}


def register_record(kind: str) -> Callable[[type[R]], type[R]]:
    """``@register_record("kind")``: the model every value of ``kind`` is checked against."""

    def add(cls: type[R]) -> type[R]:
        if kind in RECORD_MODELS and RECORD_MODELS[kind] is not cls:
            raise ValueError(f"record kind {kind!r} is registered twice")
        cls.KIND = kind
        RECORD_MODELS[kind] = cls
        return cls

    return add


@register_record(CONFIG_KIND)
class ConfigRecord(StoreRecord):
    """A run's configuration. Written by the pipeline (key ``experiment``: the experiment as
    ``Experiment.model_dump(mode="json")``) so that analyze and report use the thresholds and the
    question selection the run was made with, and show the config; any other key is a config a
    script kept. Open: an experiment's fields are its schema's, not the store's."""

    name: str | None = None


@register_record(STAGE_KIND)
class StageRecord(StoreRecord):
    """One finished stage, keyed by the stage's input hash. Written by the pipeline when a stage
    that leaves nothing else to look at (train, finetune, code-vuln) ends, so that planning sees it
    as done and later stages find its outputs. Open: ``status``, ``kind`` and the stage's outputs
    (a trained adapter's path, steps and losses; a provider job's model and id; whatever a new
    stage returns)."""

    status: str = Field(description='"done": what planning looks for')
    kind: str | None = Field(None, description="the stage's kind: train, finetune, code-vuln, ...")
    adapter: str | None = Field(None, description="train: the adapter's folder, relative to the run dir")
    steps: int | None = Field(None, description="train: optimizer steps taken")
    train_loss: float | None = Field(None, description="train: the trainer's mean training loss")
    eval_loss: float | None = Field(None, description="train: the last eval loss (None: no eval split)")
    tokens_per_s: float | None = Field(None, description="train: throughput")
    model: str | None = Field(None, description="finetune: the provider's model, the name to sample")
    job_id: str | None = Field(None, description="finetune: the provider's job")


class JudgeGroupRecord(StoreRecord):
    """One (judge model, method) group of a judge run: what this process judged and paid for."""

    CLOSED: ClassVar[bool] = True
    judge: str
    method: str
    pending: int = 0
    scored: int = 0
    no_score: int = 0
    duplicates: int = 0
    usage: dict[str, int] = Field(default_factory=dict)
    cost_usd: float | None = 0.0
    taken_by_others: int = 0  # added after schema 1's first runs: absent there


class JudgeRunConfig(StoreRecord):
    """The judge config a run used (prompt templates by their hashes). Open: the judging stage's
    config grows with its options; the migration of schema 1 reads the three score-shaping ones."""

    min_mass: float | None = None
    samples: int | None = None
    sample_max_tokens: int | None = None


@register_record(JUDGE_RUN_KIND)
class JudgeRunRecord(StoreRecord):
    """One run of the judging stage, keyed by its run id. Written by ``emkit.judge.stage`` when the
    run ends (or is interrupted) so that its usage and cost stay on record, the report can show
    them, and a schema-1 migration can tell which options made which score."""

    CLOSED: ClassVar[bool] = True
    run_id: str | None = None
    planned: int = 0
    already_scored: int = 0
    pending: int = 0
    groups: list[JudgeGroupRecord] = Field(default_factory=list)
    unjudged_answers: int = 0
    missing_questions: list[str] = Field(default_factory=list)
    prices_source: str | None = None
    elapsed_s: float = 0.0
    status: str = "done"
    scored: int = 0
    cost_usd: float | None = None
    config: JudgeRunConfig = Field(default_factory=JudgeRunConfig)
    started: float | None = None


@register_record(TRAIN_KIND)
class TrainRecord(StoreRecord):
    """The summary of one local LoRA training, keyed by its run key. Written by
    ``emkit.train.sft.train_local`` (the same JSON as ``emkit_train.json`` beside the adapter) so
    that the run store alone says what was trained, on which data, with which settings and versions."""

    CLOSED: ClassVar[bool] = True
    out: str
    model: str
    engine: str | None = None
    steps: int
    train_loss: float | None = None
    eval_loss: float | None = None
    tokens_per_s: float | None = None
    stats: dict[str, Any] = Field(default_factory=dict)
    merged: str | None = None
    run_key: str
    base_model: str
    data: str | None = None
    data_sha256: str | None = None
    eval_file_sha256: str | None = None
    eval_stats: dict[str, Any] | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    micro_batch: int | None = None
    grad_accum: int | None = None
    gradient_checkpointing: bool | None = None
    versions: dict[str, Any] = Field(default_factory=dict)


@register_record(DYNAMICS_KIND)
class DynamicsRecord(StoreRecord):
    """One evaluation during training, keyed ``run_key:hook:step``. Written by
    ``emkit.train.callbacks`` at each ``eval_steps`` so that the report can draw how a measure
    moved while training. Open: the rest of the record is what the hook returned."""

    run: str
    hook: str
    step: int


@register_record(FT_JOB_KIND)
class FineTuneJobRecord(StoreRecord):
    """One provider fine-tuning job, keyed by its data and parameters (``openai_ft.job_key``).
    Written by ``emkit.train.openai_ft`` after every step (upload, create, poll) so that a rerun
    resumes or reuses the job instead of paying for a second one."""

    CLOSED: ClassVar[bool] = True
    updated: float | None = None  # when this record was last saved
    status: str | None = None  # uploaded, then the provider's job status
    # what was asked (set before anything is uploaded)
    key: str | None = None
    file: str | None = None
    file_sha256: str | None = None
    rows: int | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    estimated_tokens: int | None = None
    estimated_cost_usd: float | None = None
    base_url: str | None = None
    # upload, then create
    file_id: str | None = None
    job_id: str | None = None
    created_at: float | None = None
    # polling, and the result
    seen_events: list[str] = Field(default_factory=list)
    trained_tokens: int | None = None
    fine_tuned_model: str | None = None
    model: str | None = None  # openai/<fine-tuned model>: the name to sample it with
    error: str | None = None


@register_record(BATCH_KIND)
class BatchRecord(StoreRecord):
    """One submission to a provider's Batch API, keyed by its input file's hash and creation time.
    Written by ``emkit.engines.batch_session`` BEFORE anything is uploaded and again after each
    step (upload, create, each status change, ingest), so a rerun after a crash or kill adopts the batch in flight instead of paying
    for its requests twice, and no request id is put in two batches that are not ingested yet."""

    CLOSED: ClassVar[bool] = True
    status: str  # preparing, uploaded, then the provider's status; ingested once its results are in
    model: str
    base_url: str | None = None
    endpoint: str = "/v1/chat/completions"
    ids: list[str]  # the custom ids (request hashes) this batch holds
    input_sha256: str | None = None
    file_id: str | None = None
    batch_id: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    succeeded: int = 0
    failed: dict[str, str] = Field(default_factory=dict)  # custom id -> the provider's error
    created: float | None = None
    updated: float | None = None


@register_record(QUESTION_KIND)
class QuestionRecord(StoreRecord, Question):
    """A question's definition, keyed by its content hash (``sampling.question_hash``). Written by
    the sampling stage beside its answers so that the judging stage uses the judge and prompts the
    answers were sampled for, even after the question file changed. ``set``: the set's name."""

    set: str | None = None


@register_record(MIGRATION_KIND)
class MigrationRecord(StoreRecord):
    """What a schema migration did and could not recover, keyed ``schema-1-to-2``. Written by
    ``emkit.store_migrate`` in the migration's transaction, so that a migrated store says which of
    its numbers rest on assumptions."""

    CLOSED: ClassVar[bool] = True
    from_: int = Field(alias="from")
    to: int
    migrated_at: float
    answers: int
    scores: int
    probes: int
    question_records: int
    answers_without_matching_question: int
    score_options: dict[str, int]
    adapter_models: dict[str, str]
    cannot_recover: list[str]


@register_record(DIRECTIONS_KIND)
class DirectionsRecord(StoreRecord):
    """One model's misalignment directions, keyed by the hash of its fingerprint, the data, the
    layer set and the resampling (``emkit.directions.storage.direction_key``). Written by the
    directions stage and ``emkit directions collect`` beside the vectors file (``file``, relative
    to the run dir), so that compare, the report and steering find them; per layer of ``layers``."""

    CLOSED: ClassVar[bool] = True
    model: str
    group: str | None = None
    seed: int | None = None
    fingerprint: str
    source: str
    data_hash: str
    file: str
    layers: list[int]
    norm: list[float]
    typical_norm: list[float]
    reliability: list[float]
    reliability_low: list[float]
    reliability_high: list[float]
    n_aligned: int
    n_misaligned: int
    resamples: int
    split_seed: int


def model_of(kind: str) -> type[StoreRecord] | None:
    """The model of ``kind`` (None: a kind no module registered, stored as any JSON object)."""
    return RECORD_MODELS.get(kind)


def _problem(exc: ValidationError) -> str:
    """A validation error in one line: where and what, for the first few problems."""
    parts = []
    for error in exc.errors()[:3]:
        where = ".".join(str(p) for p in error["loc"]) or "value"
        parts.append(f"{where}: {str(error['msg']).removeprefix('Value error, ')}")
    more = len(exc.errors()) - 3
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


def check_record(path: Path, kind: str, key: str, value: Any, *, write: bool) -> StoreRecord | None:
    """Validate one decoded value of ``kind``; the model (None for an unregistered kind)."""
    if not isinstance(value, dict):
        raise EmkitError(
            f"{path}: record {kind}/{key}: the value must be a JSON object, not {type(value).__name__}"
            + ("" if write else " (the store is damaged; nothing was changed)")
        )
    model = model_of(kind)
    if model is None:
        return None
    try:
        return model.model_validate(value, context={_WRITE: write})
    except ValidationError as exc:
        if write:
            raise EmkitError(
                f"{path}: record {kind}/{key} was not stored: {_problem(exc)} "
                f"(its model: {model.__module__}.{model.__name__})"
            ) from None
        raise EmkitError(
            f"{path}: record {kind}/{key} does not fit its model ({model.__name__}): {_problem(exc)}; "
            "the store was left as is"
        ) from None


def encode_record(path: Path, kind: str, key: str, value: dict[str, Any]) -> str:
    """The text stored for a value: sorted JSON, redacted, checked against its kind's model.

    What is checked is exactly what is stored and read back later, so write and read agree.
    """
    from emkit.redact import redact  # no credential in a stored record (see store._encode)

    text = redact(json.dumps(value, sort_keys=True, default=str), heuristics=False)
    check_record(path, kind, key, json.loads(text), write=True)
    return text


@register_record(BENCHMARK_KIND)
class BenchmarkRecord(StoreRecord):
    """One inspect_evals benchmark run on one model, keyed by everything that shapes its score
    (:func:`emkit.stages.benchmarks.benchmark_key`). Written by the benchmarks stage so that
    planning sees it done and the report compares each group with its base model."""

    CLOSED: ClassVar[bool] = True
    benchmark: str
    model: str
    group: str | None = None
    seed: int | None = None
    base: str | None = None
    metric: str
    score: float | None = None
    stderr: float | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict)
    samples: int = 0
    limit: int | None = None
    higher_is_better: bool = True
    log: str | None = None
