"""The model side of local training: load the base model for training, check the LoRA targets
against its linear modules, and describe the adapter for peft or unsloth.

Why its own module: it is what changes with a new training engine or a new model family, while
:mod:`emkit.train.sft` (the run: data, trainer, outputs) stays as it is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from emkit.errors import EmkitError
from emkit.models import ModelSpec
from emkit.train.config import TrainConfig, TrainSettings


def linear_module_names(model: Any) -> list[str]:
    """The distinct short names of the model's linear layers (what LoRA ``target_modules`` match)."""
    import torch

    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
    }
    return sorted(names)


def check_targets(model: Any, targets: Sequence[str], layers: Sequence[int] | None) -> None:
    """Refuse unknown target names (listing the real ones) and out-of-range layer indices."""
    available = linear_module_names(model)
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise EmkitError(
            f"unknown LoRA target module(s) {', '.join(unknown)}; this model's linear modules are: "
            + ", ".join(available)
        )
    if layers:
        n_layers = int(getattr(model.config.get_text_config(), "num_hidden_layers", 0) or 0)
        bad = [i for i in layers if not 0 <= i < n_layers]
        if n_layers and bad:
            raise EmkitError(
                f"layer index {bad[0]} is out of range: this model has {n_layers} layers (0..{n_layers - 1})"
            )


def resolve_engine(engine: str) -> str:
    """``peft`` or ``unsloth``: ``auto`` picks unsloth when it is installed and a CUDA GPU is present."""
    import importlib.util

    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if engine == "peft":
        return "peft"
    import torch

    has_cuda = torch.cuda.is_available()
    if engine == "unsloth":
        if not has_unsloth:
            raise EmkitError("--engine unsloth: the unsloth package is not installed (pip install unsloth)")
        if not has_cuda:
            raise EmkitError("--engine unsloth needs a CUDA GPU; use --engine peft on this machine")
        return "unsloth"
    return "unsloth" if has_unsloth and has_cuda else "peft"


def lora_kwargs(config: TrainSettings) -> dict[str, Any]:
    """The adapter's shape, in the keywords both peft's ``LoraConfig`` and unsloth's
    ``get_peft_model`` take: one place, so the two engines train the same adapter."""
    return {
        "r": config.rank,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "use_rslora": config.rslora,
        "target_modules": list(config.targets),
        "layers_to_transform": list(config.layers) if config.layers else None,
        "bias": "none",
    }


def lora_config(config: TrainSettings) -> Any:
    """peft's adapter config for this run (the peft engine: the trainer wraps the model with it)."""
    from peft import LoraConfig

    return LoraConfig(**lora_kwargs(config), task_type="CAUSAL_LM")


def load_peft_model(config: TrainConfig, spec: ModelSpec, console: Any) -> tuple[Any, Any]:
    """The base model through transformers, trainable (the trainer adds the adapter): under DDP
    each process on its own GPU (``LOCAL_RANK``), else on ``config.device`` or the default one."""
    from emkit.engines.loading import load_causal_lm

    device = config.device
    if device is None and "LOCAL_RANK" in os.environ:
        import torch

        if torch.cuda.is_available():  # one process per GPU (accelerate launch / torchrun)
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    model, tokenizer = load_causal_lm(
        spec, device=device, dtype=config.dtype, console=console, trainable=True
    )
    return model, tokenizer


def load_unsloth_model(config: TrainConfig, spec: ModelSpec, console: Any) -> tuple[Any, Any]:
    """unsloth's fused kernels (GPU only); the adapter it saves is an ordinary peft adapter."""
    from unsloth import FastLanguageModel  # must be imported before transformers' trainer

    from emkit.engines.loading import resolve_base_path

    path = resolve_base_path(spec, console)
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=path, max_seq_length=config.max_length, dtype=None, load_in_4bit=False
    )
    check_targets(model, config.targets, config.layers)
    model = FastLanguageModel.get_peft_model(
        model,
        **lora_kwargs(config),
        use_gradient_checkpointing="unsloth" if config.checkpointing(on_gpu=True) else False,
        random_state=config.seed,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_model(config: TrainConfig, spec: ModelSpec, console: Any) -> tuple[Any, Any, str]:
    """``(model, tokenizer, engine)`` ready to train: the engine resolved, the targets checked."""
    engine = resolve_engine(config.engine)
    loader = load_unsloth_model if engine == "unsloth" else load_peft_model
    model, tokenizer = loader(config, spec, console)
    if engine == "peft":
        check_targets(model, config.targets, config.layers)
    return model, tokenizer, engine
