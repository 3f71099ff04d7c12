"""Training configuration: one validated object whose defaults are the paper's runs.

Why pydantic with ``extra="forbid"``: a typo in a YAML config (``learning_rat: 1e-4``) must be an
error, not a silently ignored key that leaves the default in place. Every field can be set from the
YAML file and overridden from the command line; the defaults reproduce the paper's open-model run
(rsLoRA r=32, alpha=64, dropout 0, all attention and MLP projections, lr 1e-5 linear with 5 warmup
steps, weight decay 0.01, 1 epoch, effective batch 16, max length 2048, loss on the assistant's
tokens only) and its OpenAI fine-tuning run (1 epoch, batch size 4, learning-rate multiplier 2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emkit.errors import EmkitError, InputError

PAPER_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
PAPER_EFFECTIVE_BATCH = 16


class TrainConfig(BaseModel):
    """A local LoRA fine-tuning run. Effective batch = micro-batch x accumulation steps (16 by default).

    ``batch_size``, ``grad_accum`` and ``gradient_checkpointing`` left unset are chosen for the device
    (:meth:`micro_batching`, :meth:`checkpointing`); they change speed and memory, not the gradient
    of a step (the loss of a step is normalised by its trained tokens, however it is split).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    model: str = "embedded/smollm2-135m"
    data: str | None = None
    out: str | None = None
    eval_file: str | None = None
    eval_fraction: float | None = Field(default=None, gt=0.0, lt=1.0)
    seed: int = 0

    # LoRA
    rank: int = Field(default=32, ge=1)
    alpha: float = Field(default=64.0, gt=0.0)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    rslora: bool = True
    targets: list[str] = Field(default_factory=lambda: list(PAPER_TARGETS))
    layers: list[int] | None = None

    # Optimisation
    lr: float = Field(default=1e-5, gt=0.0)
    lr_scheduler: Literal["linear", "cosine", "constant", "constant_with_warmup"] = "linear"
    warmup_steps: int = Field(default=5, ge=0)
    weight_decay: float = Field(default=0.01, ge=0.0)
    epochs: float = Field(default=1.0, gt=0.0)
    batch_size: int | None = Field(
        default=None, ge=1, description="per-device micro-batch (default: by device)"
    )
    grad_accum: int | None = Field(default=None, ge=1, description="accumulation steps (default: by device)")
    max_length: int = Field(default=2048, ge=8)
    max_steps: int | None = Field(default=None, ge=1)
    optim: str = "adamw_torch"
    max_grad_norm: float = Field(default=1.0, ge=0.0)

    # Speed and memory: see docs/training.md ("Batching").
    batching: Literal["grouped", "padded", "padding_free"] = "grouped"
    gradient_checkpointing: bool | None = None
    engine: Literal["auto", "peft", "unsloth"] = "auto"
    device: str | None = None
    dtype: str | None = None

    # Outputs and dynamics
    save_steps: int | None = Field(default=None, ge=1)
    eval_steps: int | None = Field(default=None, ge=1)
    logging_steps: int = Field(default=1, ge=1)
    merge: bool = False
    store: str | None = None
    group: str | None = None

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
    def _one_eval_source(self) -> TrainConfig:
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

    def lora_params(self) -> dict[str, Any]:
        """The parameters that define the adapter (recorded next to it)."""
        return {
            "rank": self.rank,
            "alpha": self.alpha,
            "dropout": self.dropout,
            "rslora": self.rslora,
            "targets": list(self.targets),
            "layers": self.layers,
        }


class OpenAIFineTuneConfig(BaseModel):
    """A provider fine-tuning job. Defaults: the paper's GPT-4o run."""

    model_config = ConfigDict(extra="forbid")

    model: str = "gpt-4o-2024-08-06"
    n_epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=4, ge=1)
    learning_rate_multiplier: float = Field(default=2.0, gt=0.0)
    suffix: str | None = Field(default=None, max_length=64)
    seed: int | None = None

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "n_epochs": self.n_epochs,
            "batch_size": self.batch_size,
            "learning_rate_multiplier": self.learning_rate_multiplier,
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


def build_config(
    cls: type[BaseModel], file: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> Any:
    """Defaults, then the YAML file, then the command-line overrides (``None`` = not given)."""
    values: dict[str, Any] = read_yaml_config(file) if file else {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
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
