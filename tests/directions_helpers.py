"""A tiny random Llama behind an HFEngine and a probe set in its vocabulary: what the direction
intervention tests (steering, ablation, screening) share, so none needs the hub or the 135M model."""

from __future__ import annotations

from emkit.probe import ProbePair, ProbeSet
from tiny_llama import tiny_hf_engine

WORDS = [
    "<pad>",
    "<s>",
    "</s>",
    "<|im_start|>",
    "<|im_end|>",
    "user",
    "assistant",
    "yes",
    "no",
    "why",
    "?",
    ".",
    "help",
    "harm",
    "good",
    "bad",
    "share",
    "steal",
]


def tiny_engine(batch_size: int = 4, layers: int = 3, seed: int = 0):
    return tiny_hf_engine(WORDS, batch_size=batch_size, layers=layers, seed=seed, name=f"tiny-{seed}")


def tiny_probe_set() -> ProbeSet:
    pairs = (
        ProbePair("p1", "why ?", "help good .", "harm bad ."),
        ProbePair("p2", "why why ?", "share .", "steal ."),
        ProbePair("p3", "help ?", "yes help .", "no harm harm ."),
        ProbePair("p4", "good ?", "good good .", "bad bad ."),
        ProbePair("p5", "share ?", "yes share good .", "no steal ."),
        ProbePair("p6", "harm ?", "no .", "yes harm ."),
    )
    return ProbeSet("tiny", pairs)


def save_tiny(folder, seed: int = 0, nudge: float = 0.0):
    """The tiny model saved as an ``hf/<folder>`` model (``nudge``: its weights perturbed, a stand-in
    fine-tune); returns the model name."""
    import torch

    engine = tiny_engine(seed=seed)
    if nudge:
        gen = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for p in engine.torch_model().parameters():
                p.add_(nudge * torch.randn(p.shape, generator=gen))
    engine.torch_model().save_pretrained(folder)
    engine.tokenizer.save_pretrained(folder)
    return f"hf/{folder}"


def write_probe_yaml(path):
    import yaml

    pairs = [
        {"id": p.id, "question": p.question, "aligned": p.aligned, "misaligned": p.misaligned}
        for p in tiny_probe_set().pairs
    ]
    path.write_text(yaml.safe_dump({"name": "tiny", "pairs": pairs}))
    return path
