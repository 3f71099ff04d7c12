"""Training configuration: one validated object whose defaults are the paper's runs.

Why pydantic with ``extra="forbid"``: a typo in a YAML config (``learning_rat: 1e-4``) must be an
error, not a silently ignored key that leaves the default in place. Every field can be set from the
YAML file and overridden from the command line; the defaults reproduce the paper's open-model run
(rsLoRA r=32, alpha=64, dropout 0, all attention and MLP projections, lr 1e-5 linear with 5 warmup
steps, weight decay 0.01, 1 epoch, effective batch 16, max length 2048, loss on the assistant's
tokens only) and its OpenAI fine-tuning run (1 epoch, batch size 4, learning-rate multiplier 2).

These classes are the one source of the settings' names, defaults and help: a field with a
``description`` is an ``emkit train`` option of the same name (:mod:`emkit.commands.train`), a
group's ``train:`` block is :class:`TrainSettings` (:func:`group_settings`), and its ``provider:``
block is :class:`ProviderSettings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from emkit.errors import EmkitError, InputError

PAPER_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PAPER_EFFECTIVE_BATCH = 16


class TrainSettings(BaseModel):
    """A group's LoRA training settings: everything of a run except what each model unit sets.

    Why a base class: the experiment file's ``train:`` block, the planner's keys and the trainer all
    need "the settings a group chose"; deriving them from this class (and the per-unit fields from
    :class:`TrainConfig`) means no list of field names is written twice. Effective batch =
    micro-batch x accumulation steps (16 by default). ``batch_size``, ``grad_accum`` and
    ``gradient_checkpointing`` left unset are chosen for the device (:meth:`micro_batching`,
    :meth:`checkpointing`); they change speed and memory, not the gradient of a step (the loss of a
    step is normalised by its trained tokens, however it is split).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    eval_file: str | None = Field(default=None, description="Held-out chat JSONL for eval loss")
    eval_fraction: float | None = Field(
        default=None, gt=0.0, lt=1.0, description="Hold out this seeded fraction of the data for eval loss"
    )

    # LoRA
    rank: int = Field(default=32, ge=1, description="LoRA rank")
    alpha: float = Field(default=64.0, gt=0.0, description="LoRA alpha")
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0, description="LoRA dropout")
    rslora: bool = Field(default=True, description="Rank-stabilised LoRA scaling alpha/sqrt(r)")
    targets: list[str] = Field(
        default_factory=lambda: list(PAPER_TARGETS),
        description="Comma-separated module names",
    )
    layers: list[int] | None = Field(
        default=None, description="Comma-separated layer indices to adapt (default all), e.g. 24"
    )

    # Optimisation
    lr: float = Field(
        default=1e-5, gt=0.0, description="Learning rate, decayed linearly after the warmup steps"
    )
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(default=5, ge=0, description="Warmup steps")
    weight_decay: float = Field(default=0.01, ge=0.0, description="Weight decay")
    epochs: float = Field(default=1.0, gt=0.0, description="epochs")
    batch_size: int | None = Field(
        default=None,
        ge=1,
        description="per-device micro-batch (default: 1 on a CPU, 2 on a GPU; effective batch 16)",
    )
    grad_accum: int | None = Field(
        default=None,
        ge=1,
        description="Gradient accumulation steps (default: 16 / micro-batch, effective batch 16)",
    )
    max_length: int = Field(default=2048, ge=8, description="Truncate examples to this many tokens")
    max_steps: int | None = Field(
        default=None, ge=1, description="Stop after N optimizer steps (default: whole epochs)"
    )
    optim: str = "adamw_torch"
    max_grad_norm: float = Field(default=1.0, ge=0.0)

    # Speed and memory: see docs/training.md ("Batching").
    batching: Literal["grouped", "padded", "padding_free"] = Field(
        default="grouped",
        description="grouped (length-grouped micro-batches), padded, or padding_free",
    )
    gradient_checkpointing: bool | None = Field(
        default=None, description="Recompute activations to save memory (default: on a GPU, off on a CPU)"
    )
    engine: Literal["auto", "peft", "unsloth"] = Field(
        default="auto", description="auto (unsloth if installed and a GPU is present), peft or unsloth"
    )
    dtype: str | None = Field(
        default=None, description="float32, bfloat16 (default: bfloat16 on a GPU that supports it)"
    )

    # Outputs and dynamics
    save_steps: int | None = Field(
        default=None,
        ge=1,
        description="Save an adapter checkpoint every K steps (out/checkpoints/checkpoint-K)",
    )
    eval_steps: int | None = Field(
        default=None, ge=1, description="Every K steps: eval loss (with an eval set) and the probe hook"
    )
    logging_steps: int = Field(default=1, ge=1)
    merge: bool = Field(
        default=False, description="Also write the base model with the adapter merged in (out/merged)"
    )

    @field_validator("targets", mode="before")
    @classmethod
    def _split_targets(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [t.strip() for t in value.split(",") if t.strip()]
        return value

    @field_validator("targets")
    @classmethod
    def _nonempty_targets(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one target module is needed")
        return value

    @field_validator("layers", mode="before")
    @classmethod
    def _split_layers(cls, value: Any) -> Any:
        if isinstance(value, int):
            return [value]
        if isinstance(value, str):
            return [int(v) for v in value.split(",") if v.strip()]
        return value

    @model_validator(mode="after")
    def _one_eval_source(self) -> TrainSettings:
        if self.eval_file and self.eval_fraction:
            raise ValueError("give either eval_file or eval_fraction, not both")
        return self

    def micro_batching(self, on_gpu: bool) -> tuple[int, int]:
        """``(micro-batch, accumulation steps)``: as given, else an effective batch of 16 split for the device.

        Why by device: a GPU is fastest with several rows per pass (the paper's 2 x 8); a CPU pays per
        token computed, so one row per pass (1 x 16) computes no padding at all and, holding one
        row's activations at a time, needs ~0.7 GB less memory on SmolLM2 (measured in
        bench/train_bench.py, docs/training.md). Only one of the two given: the other makes 16.
        """
        if self.batch_size and self.grad_accum:
            return self.batch_size, self.grad_accum
        if self.grad_accum:
            return max(1, PAPER_EFFECTIVE_BATCH // self.grad_accum), self.grad_accum
        micro = self.batch_size or (2 if on_gpu else 1)
        return micro, max(1, PAPER_EFFECTIVE_BATCH // micro)

    def effective_batch_size(self, on_gpu: bool) -> int:
        micro, accum = self.micro_batching(on_gpu)
        return micro * accum

    def checkpointing(self, on_gpu: bool) -> bool:
        """Gradient checkpointing as given, else on for a GPU and off for a CPU.

        On a GPU memory bounds the model size, so the recomputation (~a third more compute) is the
        usual trade. On a CPU with one row per micro-batch, keeping the activations cost less memory
        than the plain TRL run's two-row micro-batches with checkpointing, and saved ~25% of the time.
        """
        return self.gradient_checkpointing if self.gradient_checkpointing is not None else on_gpu


class TrainConfig(TrainSettings):
    """A local LoRA fine-tuning run: a group's :class:`TrainSettings` plus what each model unit sets.

    The fields added here (:data:`UNIT_FIELDS`) are set per (group, seed) by the pipeline, or from the
    command line by ``emkit train``; they are not part of a group's settings, nor of its train key.
    """

    model: str = "embedded/smollm2-135m"
    data: str | None = None
    out: str | None = None
    seed: int = 0
    device: str | None = Field(default=None, description="cpu, cuda... (default: cuda if present)")
    store: str | None = Field(
        default=None,
        description="Run directory for the training record and dynamics (default: the output folder)",
    )
    group: str | None = Field(
        default=None, description="Group label stored with the dynamics (e.g. insecure)"
    )


# Set per model unit (pipeline) or per command (CLI): derived from the classes, never listed by hand.
UNIT_FIELDS: tuple[str, ...] = tuple(
    f for f in TrainConfig.model_fields if f not in TrainSettings.model_fields
)


def group_settings(train: dict[str, Any] | None) -> dict[str, Any]:
    """A group's full training settings (defaults filled, per-unit fields left out), JSON-ready.

    Why this shape: it is hashed into every train key, so it is exactly what the planner has always
    hashed: the whole :class:`TrainConfig` validated and dumped, less :data:`UNIT_FIELDS`. A group's
    ``train:`` block is validated against :class:`TrainConfig` (not the narrower settings) so that
    the files accepted so far still load. Raises pydantic's ``ValidationError``; the experiment loader
    turns it into a ``file:line`` error.
    """
    config = TrainConfig.model_validate(train or {}).model_dump(mode="json")
    return {k: v for k, v in config.items() if k in TrainSettings.model_fields}


class ProviderSettings(BaseModel):
    """A provider fine-tuning run's settings: THE schema of an experiment's ``provider:`` block and of
    ``emkit train --provider``'s config (defaults: the paper's GPT-4o run).

    Both spellings load: ``epochs``/``n_epochs`` and ``lr_multiplier``/``learning_rate_multiplier``
    (the API's names), so experiment files and fine-tuning configs written so far keep working.
    ``model_dump()`` uses the short names: it is hashed into the group's train key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Literal["openai"] = "openai"
    epochs: int = Field(
        default=1, ge=1, validation_alias=AliasChoices("epochs", "n_epochs"), description="whole epochs"
    )
    batch_size: int = Field(default=4, ge=1, description="the job's batch size")
    lr_multiplier: float = Field(
        default=2.0,
        gt=0.0,
        validation_alias=AliasChoices("lr_multiplier", "learning_rate_multiplier"),
        description="learning-rate multiplier",
    )
    base_url: str | None = Field(default=None, description="API base URL (else OPENAI_BASE_URL)")

    def hyperparameters(self) -> dict[str, Any]:
        """The job's hyperparameters in the API's own names (sent with the create call)."""
        return {
            "n_epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate_multiplier": self.lr_multiplier,
        }


class OpenAIFineTuneConfig(ProviderSettings):
    """One provider fine-tuning job: the settings plus the base model, the name suffix and the seed."""

    model_config = ConfigDict(frozen=False)

    model: str = "gpt-4o-2024-08-06"
    suffix: str | None = Field(
        default=None, max_length=64, description="suffix of the fine-tuned model's name"
    )
    seed: int | None = None

    def job_params(self) -> dict[str, Any]:
        """What identifies the job (hashed into its key, stored with its record).

        Why frozen in this shape: a paid job is found again by this key; renaming a field here
        would make every recorded job unknown and submit it again.
        """
        return {
            "model": self.model,
            "n_epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate_multiplier": self.lr_multiplier,
            "suffix": self.suffix,
            "seed": self.seed,
        }


def _describe(exc: ValidationError) -> tuple[str, str]:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first.get("loc", ())) or "config"
    message = first.get("msg", str(exc))
    if first.get("type") == "extra_forbidden":
        message = "unknown key (typo?)"
    return field, message


def read_yaml_config(path: str | Path) -> dict[str, Any]:
    """The mapping in a YAML config file; a clear error for a missing file or a non-mapping."""
    from emkit.yamlpos import read_yaml  # the shared checks: a directory, binary, not UTF-8, empty...

    path = Path(path)
    _, data = read_yaml(path)
    if not isinstance(data, dict):
        raise InputError("a config file must be a mapping of keys to values", where=str(path))
    return data


def _field_names(cls: type[BaseModel]) -> dict[str, str]:
    """Every key ``cls`` accepts (field names and their alias choices) -> the field's name."""
    names: dict[str, str] = {}
    for name, field in cls.model_fields.items():
        names[name] = name
        alias = field.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names.update({choice: name for choice in choices if isinstance(choice, str)})
    return names


def build_config(
    cls: type[BaseModel], file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Any:
    """Defaults, then the YAML file, then the command-line overrides (``None`` = not given).

    A file key spelt by another name of a field given on the command line (``n_epochs`` in the
    file, ``--epochs`` given) gives way to it, as the same key would.
    """
    values: dict[str, Any] = read_yaml_config(file) if file else {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    names = _field_names(cls)
    overridden = {names.get(k, k) for k in given}
    values = {k: v for k, v in values.items() if names.get(k, k) not in overridden}
    values.update(given)
    try:
        return cls(**values)
    except ValidationError as exc:
        field, message = _describe(exc)
        first_loc = exc.errors()[0].get("loc", ())
        from_cli = bool(first_loc) and first_loc[0] in given
        if file and not from_cli:
            from emkit.yamlpos import line_of

            first = exc.errors()[0].get("loc", ())
            line = line_of(Path(file).read_text(encoding="utf-8"), first) if first else None
            raise InputError(message, where=f"{file}:{line}" if line else str(file), field=field) from exc
        raise EmkitError(f"invalid training option '{field}': {message}") from exc
