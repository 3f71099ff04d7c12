"""What a full fine-tune will need in memory, said before it starts (``adapter: full``).

Why: training all weights needs several times the model's own size (its gradients and the
optimizer's two moment buffers per weight, besides the weights and the activations), and running
out of memory an hour into a run, or at the first optimizer step, is the costly way to learn it.
The estimate is printed after the model loads and before the first step:

- weights: every parameter at its own dtype (exact);
- gradients: one per trainable parameter, at the parameter's dtype (exact);
- optimizer states: AdamW keeps two moments per trainable parameter at its dtype (an 8-bit AdamW
  one byte each; SGD none);
- activations: a rough rule for one micro-batch of the longest row: about ``34 * s * b * h`` bytes
  per layer in 16-bit (``s`` tokens, ``b`` rows, hidden size ``h``; scaled by 2 in fp32), and with
  gradient checkpointing only each layer's input, ``2 * s * b * h``, plus one layer's worth. The
  LM head's logits are left out: emkit's trainer projects only the trained positions.

It is per device: DDP holds a full copy on each process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GIB = float(1 << 30)
ACTIVATION_BYTES_PER_LAYER = 34  # per token x hidden unit, in 16-bit, without recomputation


@dataclass(frozen=True)
class MemoryEstimate:
    """GiB per device of each part, and what the activation rule assumed."""

    parameters: int
    weights: float
    gradients: float
    optimizer: float
    activations: float
    micro_batch: int
    seq_len: int
    checkpointing: bool

    @property
    def total(self) -> float:
        return self.weights + self.gradients + self.optimizer + self.activations

    def line(self, available: float | None = None) -> str:
        """One line for the console (``available``: the device's memory in GiB, when known)."""
        text = (
            f"[emkit] full fine-tuning of {self.parameters / 1e6:.1f}M parameters needs about "
            f"{self.total:.2f} GiB per device: weights {self.weights:.2f} + gradients {self.gradients:.2f}"
            f" + optimizer states {self.optimizer:.2f} + activations ~{self.activations:.2f} "
            f"(micro-batch {self.micro_batch} x {self.seq_len} tokens"
            + (", gradient checkpointing" if self.checkpointing else "")
            + ")"
        )
        if available is not None:
            text += f"; this device has {available:.1f} GiB"
        return text


def optimizer_bytes_per_param(optim: str, param_bytes: int) -> float:
    """Bytes of optimizer state per trainable parameter for the trainer's ``optim`` name."""
    name = optim.lower()
    if "sgd" in name:
        return 0.0
    if "8bit" in name:
        return 2.0
    if "adafactor" in name:
        return 0.1 * param_bytes  # factored second moments: a small fraction of the weights
    return 2.0 * param_bytes  # AdamW / Adam: two moments at the parameter's dtype


def estimate(
    model: Any,
    *,
    micro_batch: int,
    seq_len: int,
    checkpointing: bool,
    optim: str = "adamw_torch",
    activation_bytes: int = 2,
) -> MemoryEstimate:
    """The estimate for ``model`` as it is loaded (see the module docstring for each part)."""
    weights = gradients = optimizer = 0.0
    parameters = 0
    for param in model.parameters():
        size = param.numel() * param.element_size()
        weights += size
        parameters += param.numel()
        if param.requires_grad:
            gradients += size
            optimizer += param.numel() * optimizer_bytes_per_param(optim, param.element_size())
    getter = getattr(model.config, "get_text_config", None)
    text = getter() if callable(getter) else model.config
    hidden = int(getattr(text, "hidden_size", 0) or 0)
    layers = int(getattr(text, "num_hidden_layers", 0) or 0)
    tokens_x_hidden = seq_len * micro_batch * hidden
    scale = activation_bytes / 2
    per_layer = ACTIVATION_BYTES_PER_LAYER * tokens_x_hidden * scale
    # With checkpointing: each layer's input kept, and one layer's activations while it recomputes.
    kept = 2 * tokens_x_hidden * scale * layers + per_layer
    activations = kept if checkpointing else per_layer * layers
    return MemoryEstimate(
        parameters=parameters,
        weights=weights / GIB,
        gradients=gradients / GIB,
        optimizer=optimizer / GIB,
        activations=activations / GIB,
        micro_batch=micro_batch,
        seq_len=seq_len,
        checkpointing=checkpointing,
    )


def device_memory_gib(device: str) -> float | None:
    """The total memory of a CUDA device in GiB (None on a CPU)."""
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_properties(torch.device(device)).total_memory / GIB
