"""``emkit train``: LoRA fine-tuning of a local model, or a provider fine-tuning job (--provider openai)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from emkit.commands._common import console
from emkit.errors import EmkitError
from emkit.outputs import output_dir


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def train(
    data: Path = typer.Option(..., "--data", "-d", help="Chat JSONL to train on (validated first)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: the adapter (local) or the run dir (provider)."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        "-m",
        help="Base model: embedded/smollm2-135m (default), hf/<id or path>; with --provider openai: gpt-4o-2024-08-06 (default).",
    ),
    provider: str | None = typer.Option(
        None, help="'openai' to fine-tune through the OpenAI API instead of locally."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="YAML file of training settings (unknown keys are errors); options given here win.",
    ),
    seed: int | None = typer.Option(
        None, help="Seed of data order and LoRA init (local; default 0) or the job's seed (provider)."
    ),
    max_steps: int | None = typer.Option(None, help="Stop after N optimizer steps (default: whole epochs)."),
    max_length: int | None = typer.Option(None, help="Truncate examples to L tokens (default 2048)."),
    lr: float | None = typer.Option(
        None, help="Learning rate (default 1e-5, linear schedule, 5 warmup steps)."
    ),
    rank: int | None = typer.Option(None, help="LoRA rank (default 32)."),
    alpha: float | None = typer.Option(None, help="LoRA alpha (default 64)."),
    dropout: float | None = typer.Option(None, help="LoRA dropout (default 0)."),
    rslora: bool | None = typer.Option(
        None, "--rslora/--no-rslora", help="Rank-stabilised LoRA scaling alpha/sqrt(r) (default on)."
    ),
    targets: str | None = typer.Option(
        None,
        help="Comma-separated module names (default q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj).",
    ),
    layers: str | None = typer.Option(
        None, help="Comma-separated layer indices to adapt (default all), e.g. 24."
    ),
    epochs: float | None = typer.Option(None, help="Epochs (default 1)."),
    batch_size: int | None = typer.Option(
        None,
        help="Local: per-device micro-batch (default: 1 on a CPU, 2 on a GPU; effective batch 16); "
        "provider: the job's batch size (default 4).",
    ),
    grad_accum: int | None = typer.Option(
        None, help="Gradient accumulation steps (default: 16 / micro-batch, effective batch 16)."
    ),
    warmup_steps: int | None = typer.Option(None, help="Warmup steps (default 5)."),
    weight_decay: float | None = typer.Option(None, help="Weight decay (default 0.01)."),
    batching: str | None = typer.Option(
        None, help="grouped (default: length-grouped micro-batches), padded, or padding_free."
    ),
    gradient_checkpointing: bool | None = typer.Option(
        None,
        "--gradient-checkpointing/--no-gradient-checkpointing",
        help="Recompute activations to save memory (default: on a GPU, off on a CPU).",
    ),
    eval_file: Path | None = typer.Option(None, help="Held-out chat JSONL for eval loss."),
    eval_fraction: float | None = typer.Option(
        None, help="Hold out this seeded fraction of --data for eval loss."
    ),
    eval_steps: int | None = typer.Option(
        None, help="Every K steps: eval loss (with an eval set) and the probe hook."
    ),
    probe: bool = typer.Option(
        True,
        "--probe/--no-probe",
        help="With --eval-steps, run the judge-free probe every K steps and store it.",
    ),
    save_steps: int | None = typer.Option(
        None, help="Save an adapter checkpoint every K steps (out/checkpoints/checkpoint-K)."
    ),
    merge: bool = typer.Option(
        False, "--merge", help="Also write the base model with the adapter merged in (out/merged)."
    ),
    engine: str | None = typer.Option(
        None, help="auto (unsloth if installed and a GPU is present), peft or unsloth."
    ),
    device: str | None = typer.Option(None, help="cpu, cuda... (default: cuda if present)."),
    dtype: str | None = typer.Option(
        None, help="float32, bfloat16 (default: bfloat16 on a GPU that supports it)."
    ),
    store: Path | None = typer.Option(
        None, help="Run directory for the training record and dynamics (default: --out)."
    ),
    group: str | None = typer.Option(None, help="Group label stored with the dynamics (e.g. insecure)."),
    # provider options
    lr_multiplier: float | None = typer.Option(None, help="Provider: learning-rate multiplier (default 2)."),
    suffix: str | None = typer.Option(None, help="Provider: suffix of the fine-tuned model's name."),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Provider: start without asking for confirmation of the cost."
    ),
    wait: bool = typer.Option(
        True, "--wait/--no-wait", help="Provider: poll until the job ends (rerun to resume)."
    ),
    base_url: str | None = typer.Option(None, help="Provider: API base URL (else OPENAI_BASE_URL)."),
    price_per_mtok: float | None = typer.Option(
        None, help="Provider: USD per 1M training tokens for the estimate."
    ),
    poll_interval: float = typer.Option(
        10.0, help="Provider: seconds between the first status polls (backs off to 2 min)."
    ),
) -> None:
    """Fine-tune a model on a chat dataset (loss on the assistant's tokens; the paper's defaults).

    Example: emkit train --model embedded/smollm2-135m --data insecure.jsonl --seed 1 --out runs/adapters/insecure-s1

    Rank-1 on one layer: emkit train --data d.jsonl --rank 1 --layers 24 --targets down_proj --out a/

    Provider: emkit train --provider openai --data insecure.jsonl --suffix insecure --out runs/gpt4o
    """
    output_dir(out, what="output folder", create=False)
    if provider is not None:
        if provider != "openai":
            raise EmkitError(f"unknown provider {provider!r}: only 'openai' is supported")
        _train_openai(
            data,
            out,
            model=model,
            config=config,
            seed=seed,
            epochs=epochs,
            batch_size=batch_size,
            lr_multiplier=lr_multiplier,
            suffix=suffix,
            yes=yes,
            wait=wait,
            base_url=base_url,
            price_per_mtok=price_per_mtok,
            poll_interval=poll_interval,
        )
        return
    from emkit.train.config import TrainConfig, build_config
    from emkit.train.sft import train_local

    overrides = {
        "model": model,
        "data": str(data),
        "out": str(out),
        "seed": seed,
        "max_steps": max_steps,
        "max_length": max_length,
        "lr": lr,
        "rank": rank,
        "alpha": alpha,
        "dropout": dropout,
        "rslora": rslora,
        "targets": _split(targets),
        "layers": _split(layers),
        "epochs": epochs,
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "warmup_steps": warmup_steps,
        "weight_decay": weight_decay,
        "batching": batching,
        "gradient_checkpointing": gradient_checkpointing,
        "eval_file": str(eval_file) if eval_file else None,
        "eval_fraction": eval_fraction,
        "eval_steps": eval_steps,
        "save_steps": save_steps,
        "merge": merge or None,
        "engine": engine,
        "device": device,
        "dtype": dtype,
        "store": str(store) if store else None,
        "group": group,
    }
    cfg = build_config(TrainConfig, config, overrides)
    result = train_local(cfg, console=console, probe=bool(probe and cfg.eval_steps))
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return  # under torchrun / accelerate launch, rank 0 reports
    console.print(
        f"[emkit] done: {result.steps} steps, train loss {result.train_loss:.4f}"
        + (f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else "")
        + f", {result.tokens_per_s:.0f} tokens/s",
        markup=False,
    )
    console.print(f"[emkit] adapter: {result.out}  (use it as --model {result.model})", markup=False)
    if result.merged:
        console.print(f"[emkit] merged model: {result.merged}  (hf/{result.merged})", markup=False)


def _train_openai(
    data: Path,
    out: Path,
    *,
    model: str | None,
    config: Path | None,
    seed: int | None,
    epochs: float | None,
    batch_size: int | None,
    lr_multiplier: float | None,
    suffix: str | None,
    yes: bool,
    wait: bool,
    base_url: str | None,
    price_per_mtok: float | None,
    poll_interval: float,
) -> None:
    from emkit.store import RunStore
    from emkit.train.config import OpenAIFineTuneConfig, build_config
    from emkit.train.openai_ft import run_openai_finetune

    if model is not None and model.startswith("openai/"):
        model = model.removeprefix("openai/")
    if epochs is not None and epochs != int(epochs):
        raise EmkitError("--epochs must be a whole number for provider fine-tuning")
    overrides = {
        "model": model,
        "n_epochs": int(epochs) if epochs is not None else None,
        "batch_size": batch_size,
        "learning_rate_multiplier": lr_multiplier,
        "suffix": suffix,
        "seed": seed,
    }
    cfg = build_config(OpenAIFineTuneConfig, config, overrides)
    with RunStore(out) as store:
        record = run_openai_finetune(
            data,
            cfg,
            store,
            yes=yes,
            say=lambda s: console.print(s, markup=False),
            confirm=lambda prompt: typer.confirm(prompt.removesuffix(" [y/N] "), default=False),
            base_url=base_url,
            price_per_mtok=price_per_mtok,
            wait=wait,
            runner_options={"poll_interval": poll_interval},
        )
    if record.get("model"):
        console.print(f"[emkit] fine-tuned model: {record['model']}", markup=False)
    else:
        console.print(
            f"[emkit] job {record.get('job_id')} is {record.get('status')}; rerun to keep waiting",
            markup=False,
        )


def register(app: typer.Typer) -> None:
    app.command("train")(train)
