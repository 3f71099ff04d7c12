"""Local LoRA / rsLoRA supervised fine-tuning on the assistant's tokens (TRL's SFTTrainer + peft).

The whole run is :func:`train_local`: validate the dataset (a bad row stops everything before any
model is loaded), load the base model, check the LoRA targets against the model's linear modules,
tokenize with assistant-only labels (:mod:`emkit.train.tokenize`), train with TRL's SFTTrainer
(seeded LoRA init and data order; length-grouped micro-batches, see :mod:`emkit.train.batching`),
and write into ``out``:

- the adapter (``adapter_config.json`` + weights) and the tokenizer, so ``hf/BASE@out`` and
  ``embedded/smollm2-135m@out`` load it, ``vllm/BASE@out`` too;
- ``train_log.jsonl`` (step, loss, lr, tokens/s), ``loss_curve.png``, ``emkit_train.json`` (the
  config, dataset hash, token counts and versions);
- ``checkpoints/checkpoint-K`` every ``save_steps`` and ``merged/`` with ``merge``.

Multi-GPU: ``accelerate launch -m emkit.train --model ... --data ... --out ...`` (or ``-m
emkit.train.sft``, the older spelling) takes the same options as ``emkit train``; the Trainer runs DDP
and only rank 0 writes. The model side (loading, targets, the adapter's shape) is in
:mod:`emkit.train.lora`, TRL's trainer and arguments in :mod:`emkit.train.trainer`.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emkit.errors import EmkitError
from emkit.hashing import file_sha256, stable_hash
from emkit.models import ModelSpec, parse_model
from emkit.store_records import TRAIN_KIND
from emkit.train.config import TrainConfig
from emkit.train.lora import load_model, lora_config
from emkit.train.trainer import sft_args, trainer_class


@dataclass
class TrainResult:
    """What a finished run produced; ``model`` is the name to sample it with."""

    out: Path
    model: str
    engine: str
    steps: int
    train_loss: float | None
    eval_loss: float | None
    tokens_per_s: float
    stats: dict[str, int]
    merged: Path | None = None
    log_path: Path | None = None
    plot_path: Path | None = None
    dynamics: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "model": self.model,
            "engine": self.engine,
            "steps": self.steps,
            "train_loss": self.train_loss,
            "eval_loss": self.eval_loss,
            "tokens_per_s": self.tokens_per_s,
            "stats": self.stats,
            "merged": str(self.merged) if self.merged else None,
        }


# -- inputs --------------------------------------------------------------------------------------
def load_datasets(config: TrainConfig) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validated train rows and eval rows (from ``eval_file`` or a seeded ``eval_fraction``)."""
    from emkit.data.chat import load_chat_jsonl

    if not config.data:
        raise EmkitError("no training data: give --data FILE (a chat JSONL)")
    rows = load_chat_jsonl(config.data)
    eval_rows: list[dict[str, Any]] = []
    if config.eval_file:
        eval_rows = load_chat_jsonl(config.eval_file)
    elif config.eval_fraction:
        order = list(range(len(rows)))
        random.Random(config.seed).shuffle(order)
        n_eval = max(1, round(config.eval_fraction * len(rows)))
        if n_eval >= len(rows):
            raise EmkitError(
                f"{config.data}: {len(rows)} rows are too few for eval_fraction {config.eval_fraction}"
            )
        held = set(order[:n_eval])
        eval_rows = [rows[i] for i in sorted(held)]
        rows = [row for i, row in enumerate(rows) if i not in held]
    return rows, eval_rows


def run_key(config: TrainConfig, data_sha: str, eval_sha: str | None) -> str:
    """The identity of a run: same data + same settings = same key (outputs paths excluded)."""
    settings = config.model_dump(
        exclude={
            "out",
            "store",
            "data",
            "eval_file",
            "device",
            "group",
            "merge",
            "save_steps",
            "eval_steps",
            "logging_steps",
        }
    )
    return stable_hash({"data": data_sha, "eval": eval_sha, "config": settings})


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out: dict[str, str] = {}
    for name in ("torch", "transformers", "peft", "trl", "unsloth"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


def train_local(
    config: TrainConfig,
    *,
    hooks: Sequence[tuple[Any, int]] = (),
    console: Any = None,
    probe: bool = False,
    callbacks: Sequence[Any] = (),
) -> TrainResult:
    """Run one local fine-tuning job; see the module docstring for what lands in ``config.out``.

    ``hooks`` are ``(fn(model, tokenizer, step) -> dict, every_k_steps)`` pairs; ``probe=True`` adds
    the judge-free probe every ``config.eval_steps`` steps (see :mod:`emkit.train.callbacks`);
    ``callbacks`` are extra ``transformers.TrainerCallback`` objects handed to the trainer as they are.
    """
    if not config.out:
        raise EmkitError("no output folder: give --out DIR")
    spec = parse_model(config.model)
    if not spec.is_local:
        raise EmkitError(
            f"{spec.full}: local training needs an embedded/ or hf/ model "
            "(for OpenAI fine-tuning use --provider openai)"
        )
    if spec.adapter:
        raise EmkitError(f"{spec.full}: train from a base model, without '@adapter'")
    if probe and not config.eval_steps:
        raise EmkitError("the probe runs every --eval-steps K steps: give --eval-steps")

    # 1. Data first: a bad row stops here, before any model is loaded.
    rows, eval_rows = load_datasets(config)
    out = Path(config.out)

    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    is_main = int(os.environ.get("RANK", "0") or 0) == 0

    def say(text: str) -> None:
        if console is not None and is_main:  # one copy of each message under DDP
            console.print(text, markup=False, highlight=False)

    # 2. Model.
    model, tokenizer, engine = load_model(config, spec.base, console)

    # 3. Tokens with assistant-only labels.
    from datasets import Dataset

    from emkit.train.tokenize import tokenize_rows

    examples, stats = tokenize_rows(tokenizer, rows, max_length=config.max_length)
    if not examples:
        raise EmkitError(
            f"{config.data}: no row keeps an assistant token within max_length {config.max_length}"
        )
    eval_examples, eval_stats = (
        tokenize_rows(tokenizer, eval_rows, max_length=config.max_length) if eval_rows else ([], {})
    )
    say(
        f"[emkit] {stats['kept']} training rows ({stats['tokens']} tokens, {stats['trained_tokens']} trained), "
        f"{stats['truncated']} truncated to {config.max_length}, {stats['dropped']} dropped"
        + (f"; {len(eval_examples)} eval rows" if eval_examples else "")
    )
    train_ds = Dataset.from_list(examples)
    eval_ds = Dataset.from_list(eval_examples) if eval_examples else None

    # 4. Trainer (TRL seeds everything, LoRA init included, from args.seed before wrapping).
    import torch

    from emkit.train.callbacks import DynamicsCallback, TrainLogCallback, probe_hook

    device = str(next(model.parameters()).device)
    use_cpu = not device.startswith("cuda")
    # On a GPU: bf16 autocast where supported (weights in bf16 by default, or fp32 with --dtype
    # float32); fp16 autocast over fp32 weights on older GPUs. On a CPU: plain fp32.
    bf16 = (not use_cpu) and torch.cuda.is_bf16_supported()
    fp16 = (not use_cpu) and not bf16 and next(model.parameters()).dtype == torch.float32
    args = sft_args(config, out, use_cpu=use_cpu, bf16=bf16, fp16=fp16, has_eval=eval_ds is not None)
    data_sha = file_sha256(config.data)
    eval_sha = file_sha256(config.eval_file) if config.eval_file else None
    key = run_key(config, data_sha, eval_sha)
    adapter_name = ModelSpec(spec.scheme, spec.name, str(out)).full

    store = None
    if is_main and (config.store or probe or hooks):
        from emkit.store import RunStore

        store = RunStore(config.store or out)

    try:
        log_cb = TrainLogCallback(out / "train_log.jsonl", console=console if is_main else None)
        trainer_callbacks: list[Any] = [log_cb, *callbacks]
        all_hooks = list(hooks)
        if probe:
            hook = probe_hook(
                store,
                config.group,
                config.seed,
                model_name=adapter_name,
                tags={"base": spec.base.full, "run": key},
                fingerprint=f"training-run:{key}",
            )
            all_hooks.append((hook, config.eval_steps))
        dynamics = [
            DynamicsCallback(
                fn, every, tokenizer=tokenizer, store=store, run_key=key, console=console if is_main else None
            )
            for fn, every in all_hooks
        ]
        trainer_callbacks.extend(dynamics)

        trainer_cls = trainer_class()
        trainer = trainer_cls(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=eval_ds,
            processing_class=tokenizer,
            peft_config=lora_config(config) if engine == "peft" else None,
            callbacks=trainer_callbacks,
        )
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # TrainLogCallback prints one readable line per step
        trainer.emkit_grouped = config.batching == "grouped"
        trainer.emkit_seed = config.seed
        micro, accum = args.per_device_train_batch_size, args.gradient_accumulation_steps
        split = f"{micro} x {accum} accumulation" + (f" x {world} processes" if world > 1 else "")
        say(
            f"[emkit] training {spec.full} with {engine}: rsLoRA={config.rslora} r={config.rank} "
            f"alpha={config.alpha} targets={','.join(config.targets)}"
            + (f" layers={config.layers}" if config.layers else "")
            + f", effective batch {micro * accum * world} ({split}"
            + (", gradient checkpointing" if args.gradient_checkpointing else "")
            + f"), lr {config.lr}"
        )
        output = trainer.train()
        eval_loss = None
        if eval_ds is not None:
            # The trainer's own history (kept on every rank, so all ranks take the same branch).
            last = [r for r in trainer.state.log_history if "eval_loss" in r]
            if last and last[-1].get("step") == trainer.state.global_step:  # just evaluated at --eval-steps
                eval_loss = float(last[-1]["eval_loss"])
            else:
                eval_loss = float(trainer.evaluate()["eval_loss"])

        # 5. Outputs (rank 0 only).
        merged = None
        plot_path = None
        tokens_per_s = round(log_cb.tokens_per_s, 2)
        if trainer.is_world_process_zero():
            out.mkdir(parents=True, exist_ok=True)
            trainer.model.save_pretrained(str(out))
            tokenizer.save_pretrained(str(out))
            from emkit.train.plots import plot_loss_curve

            plot_path = plot_loss_curve(
                log_cb.rows, out / "loss_curve.png", title=f"{spec.full} seed {config.seed}"
            )
            if config.merge:
                merged = out / "merged"
                say(f"[emkit] merging the adapter into the base weights -> {merged}")
                merged_model = trainer.model.merge_and_unload()
                merged_model.save_pretrained(str(merged))
                tokenizer.save_pretrained(str(merged))
        result = TrainResult(
            out=out,
            model=adapter_name,
            engine=engine,
            steps=int(trainer.state.global_step),
            train_loss=float(output.training_loss) if output.training_loss is not None else None,
            eval_loss=eval_loss,
            tokens_per_s=tokens_per_s,
            stats=stats,
            merged=merged,
            log_path=log_cb.path,
            plot_path=plot_path,
            dynamics=[r for cb in dynamics for r in cb.results],
        )
        if trainer.is_world_process_zero():
            summary = {
                **result.to_dict(),
                "run_key": key,
                "base_model": spec.base.full,
                "data": str(config.data),
                "data_sha256": data_sha,
                "eval_file_sha256": eval_sha,
                "eval_stats": eval_stats,
                "config": config.model_dump(),
                "micro_batch": args.per_device_train_batch_size,
                "grad_accum": args.gradient_accumulation_steps,
                "gradient_checkpointing": bool(args.gradient_checkpointing),
                "versions": _versions(),
            }
            (out / "emkit_train.json").write_text(
                json.dumps(summary, indent=2, default=str), encoding="utf-8"
            )
            if store is not None:
                store.put_record(TRAIN_KIND, key, summary)
    finally:
        if store is not None:
            store.close()
    return result


if __name__ == "__main__":
    # The documented launch line ``accelerate launch -m emkit.train.sft ...`` (and torchrun -m): run
    # the package's entry point, which owns the CLI, so this library module never imports the CLI.
    import runpy

    runpy.run_module("emkit.train", run_name="__main__", alter_sys=True)
