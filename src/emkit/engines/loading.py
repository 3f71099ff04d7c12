"""Load a local causal LM (embedded or ``hf/...``), optionally with a LoRA adapter.

One code path for every local model: the embedded model is just a converted folder in the cache,
any other name is handed to transformers (a local path, or a hub id when a hub is reachable).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emkit.engines.registry import backend
from emkit.errors import EmkitError
from emkit.models import ModelSpec, parse_model


def resolve_base_path(spec: ModelSpec, console=None) -> str:
    """The folder or hub id that transformers should load for ``spec`` (without adapter)."""
    weights = backend(spec.scheme).weights  # where the scheme's weights come from
    if weights == "packaged":
        from emkit.engines.embedded import ensure_converted

        with quiet_transformers():  # the one-time conversion loads the GGUF file twice
            return str(ensure_converted(console))
    if weights == "hub":
        return spec.name
    raise EmkitError(f"{spec.full}: not a local model (use embedded/... or hf/...)")


def pick_device(device: str | None = None) -> str:
    """The device to load on: ``device`` checked, else cuda when there is one, else cpu.

    Why checked here: every local model (sampling, judging, probing, training) loads through
    :func:`load_causal_lm`, and torch answers a mistyped or absent device with its own exception
    deep inside the load; one clear line naming the option is the user's error, not a crash.
    """
    import torch

    if not device:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise EmkitError(f"--device {device!r}: not a device (use cpu, cuda, cuda:N or mps)") from None
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise EmkitError(f"--device {device!r}: no CUDA device on this machine (use cpu)")
        if parsed.index is not None and parsed.index >= count:
            raise EmkitError(
                f"--device {device!r}: this machine has {count} CUDA device(s), 0 to {count - 1}"
            )
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise EmkitError(f"--device {device!r}: MPS is not available on this machine (use cpu)")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise EmkitError(f"--device {device!r}: emkit loads models on cpu, cuda or mps only")
    return device


_DTYPES = ("float32", "bfloat16", "float16")


def pick_dtype(device: str, dtype: str | None = None) -> Any:
    """The torch dtype named ``dtype`` (one of float32, bfloat16, float16), else the device's best.

    Only real dtypes are accepted: ``getattr(torch, name)`` also finds modules and functions
    (``cuda``, ``tensor``), which would fail much later inside transformers.
    """
    import torch

    if dtype:
        if dtype not in _DTYPES:
            raise EmkitError(f"--dtype {dtype!r}: not a dtype emkit loads with (use {', '.join(_DTYPES)})")
        return getattr(torch, dtype)
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' own progress bars and info logging while it loads a model.

    Why: transformers 5 draws a "Loading weights" tqdm bar (and hub download bars) for every load,
    several lines per stage that bury emkit's one line per stage. Errors still raise; warnings that
    matter (an adapter that does not match) still come through as errors or warnings. The previous
    settings are restored, so library users outside a load see transformers as they configured it.
    """
    import functools
    import importlib

    from transformers.utils import logging as hf_logging

    bars_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # Some loaders call tqdm directly, past transformers' switch (the GGUF de-quantizer draws a bar
    # over its 272 tensors): give those modules a tqdm that is off, for the load only.
    swapped = []
    for name in _DIRECT_TQDM_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        bar = getattr(module, "tqdm", None)
        if callable(bar):
            swapped.append((module, bar))
            module.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        for module, bar in swapped:
            module.tqdm = bar
        hf_logging.set_verbosity(verbosity)
        if bars_on:
            hf_logging.enable_progress_bar()


# transformers modules that import tqdm themselves instead of going through its logging switch.
_DIRECT_TQDM_MODULES = ("transformers.modeling_gguf_pytorch_utils",)


def load_tokenizer(spec: ModelSpec | str, console=None):
    from transformers import AutoTokenizer

    spec = parse_model(spec)
    path = resolve_base_path(spec, console)
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise EmkitError(f"cannot load the tokenizer of {spec.full}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    spec: ModelSpec | str,
    *,
    device: str | None = None,
    dtype: str | None = None,
    console=None,
    trainable: bool = False,
):
    """Return ``(model, tokenizer)``. With an adapter and ``trainable=True`` the peft model wraps the
    base model; with ``trainable=False`` (sampling, judging, probes, activations) the adapter is
    merged into the weights, and the model is in eval mode with gradients off.
    """
    from transformers import AutoModelForCausalLM

    spec = parse_model(spec)
    path = resolve_base_path(spec, console)
    device = pick_device(device)
    torch_dtype = pick_dtype(device, dtype)
    tokenizer = load_tokenizer(spec.base, console)
    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except OSError as exc:
        raise EmkitError(f"cannot load {spec.full}: {exc}") from exc
    if spec.adapter:
        from peft import PeftModel

        adapter = Path(spec.adapter)
        if not (adapter / "adapter_config.json").exists():
            raise EmkitError(f"{adapter}: not a LoRA adapter folder (no adapter_config.json)")
        with quiet_transformers():
            model = PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
            if not trainable:
                # For inference the adapter is folded into the base weights: every projection is
                # then one matmul instead of three plus a scale, which on a CPU costs a LoRA model
                # ~40% more per decoding step. The outputs are the same up to float rounding (a
                # zero adapter adds exact zeros), and the fingerprint still names base + adapter.
                model = model.merge_and_unload()
    model.to(device)
    if not trainable:
        model.eval()
        for param in model.parameters():
            param.requires_grad_(False)
    return model, tokenizer
