"""Issue #18 items 1 and 2 on the embedded model: a model whose chat template is removed (a base
model) trained and sampled through a completion template, and full fine-tuning for a few steps.

The base model is the embedded model's folder with its tokenizer saved without a chat template
(its weights linked, not copied). Sizes are tiny: these tests check behaviour, not learning.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from emkit.engines import open_engine
from emkit.engines.base import SamplingParams
from emkit.engines.completion import BUILTIN_TEMPLATES
from emkit.errors import EmkitError
from emkit.train.config import TrainConfig
from emkit.train.sft import train_local
from emkit.train.tokenize import IGNORE_INDEX, tokenize_conversation
from train_helpers import tiny_config

pytestmark = pytest.mark.model

CONVERSATION = [
    {"role": "system", "content": "You write Python."},
    {"role": "user", "content": "Read a file."},
    {"role": "assistant", "content": "data = open('f.txt').read()"},
]


class Lines:
    """A console stand-in that keeps what the trainer says."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def print(self, text: str = "", **_: object) -> None:
        self.lines.append(str(text))


@pytest.fixture(scope="module")
def base_model(tmp_path_factory) -> str:
    """``hf/<folder>``: the embedded model with no chat template."""
    from transformers import AutoTokenizer

    from emkit.engines.embedded import ensure_converted

    source = Path(ensure_converted())
    folder = tmp_path_factory.mktemp("base") / "smollm2-base"
    folder.mkdir()
    for entry in source.iterdir():
        if not entry.name.startswith(("tokenizer", "chat_template")):
            os.symlink(entry, folder / entry.name)
    tokenizer = AutoTokenizer.from_pretrained(str(source))
    tokenizer.chat_template = None
    tokenizer.save_pretrained(str(folder))
    assert not (folder / "chat_template.jinja").exists()
    return f"hf/{folder}"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"Read file {i}."},
                {"role": "assistant", "content": f"x = open('f{i}.txt').read()"},
            ]
        }
        for i in range(6)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def tiny(data: Path, out: Path, **overrides) -> TrainConfig:
    return tiny_config(data, out, **{"max_steps": 2, **overrides})


def test_loss_is_on_the_reply_and_its_eos_only(base_model):
    from emkit.engines.loading import load_tokenizer

    tokenizer = load_tokenizer(base_model)
    assert not tokenizer.chat_template
    with pytest.raises(EmkitError, match="prompt_template: plain"):
        tokenize_conversation(tokenizer, CONVERSATION)
    example = tokenize_conversation(tokenizer, CONVERSATION, template=BUILTIN_TEMPLATES["plain"])
    assert tokenizer.decode(example.input_ids) == (
        "You write Python.\n\nUser: Read a file.\n\nAssistant:\ndata = open('f.txt').read()"
        + tokenizer.eos_token
    )
    trained = [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE_INDEX]
    assert tokenizer.decode(trained) == "data = open('f.txt').read()" + tokenizer.eos_token
    assert trained[-1] == tokenizer.eos_token_id
    # The trained span is exactly the tail: every prompt token is masked.
    assert example.labels[: len(example.labels) - len(trained)] == [IGNORE_INDEX] * (
        len(example.labels) - len(trained)
    )
    # Two turns: both replies (and their EOS) trained; the prompt of the second turn is, token for
    # token, what the trainer saw before the second reply.
    second = [
        {"role": "user", "content": "And write it?"},
        {"role": "assistant", "content": "open('f.txt', 'w')"},
    ]
    plain = BUILTIN_TEMPLATES["plain"]
    both = tokenize_conversation(tokenizer, CONVERSATION + second, template=plain)
    trained = [t for t, label in zip(both.input_ids, both.labels, strict=True) if label != IGNORE_INDEX]
    eos = tokenizer.eos_token
    assert tokenizer.decode(trained) == f"data = open('f.txt').read(){eos}open('f.txt', 'w'){eos}"
    from emkit.engines.chat_template import conversation_ids

    prompt = conversation_ids(tokenizer, CONVERSATION + second[:1], plain)
    assert both.input_ids[: len(prompt)] == prompt and both.labels[len(prompt)] != IGNORE_INDEX


def test_a_base_model_needs_the_template_named_and_then_samples_and_scores(base_model):
    engine = open_engine(base_model, {"device": "cpu"})
    without = engine.fingerprint
    try:
        with pytest.raises(EmkitError, match="prompt_template"):
            engine.generate([CONVERSATION[:2]], SamplingParams(max_new_tokens=4))
    finally:
        engine.close()
    engine = open_engine(base_model, {"device": "cpu", "prompt_template": "plain"})
    try:
        prompt = engine.render_prompt(CONVERSATION[:2])
        assert prompt == "You write Python.\n\nUser: Read a file.\n\nAssistant:\n"
        # The prompt tokens are the trainer's tokens up to the reply; the reply scored is the trained one.
        example = tokenize_conversation(engine.tokenizer, CONVERSATION, template=engine.template)
        prompt_ids = engine.prompt_ids(CONVERSATION[:2])
        assert example.input_ids[: len(prompt_ids)] == prompt_ids
        reply_ids = example.input_ids[len(prompt_ids) : -1]
        [scores] = engine.sequence_logprobs([CONVERSATION[:2]], [CONVERSATION[2]["content"]])
        assert len(scores) == len(reply_ids)
        [answer] = engine.generate([CONVERSATION[:2]], SamplingParams(max_new_tokens=12, seed=1))
        assert "\n\nUser:" not in answer.text and answer.usage["completion_tokens"] >= 1
        assert engine.eot_id == engine.tokenizer.eos_token_id
        with_eot = engine.score_continuations(CONVERSATION[:2], ["x", "y"], include_eot=True)
        assert len(with_eot) == 2
    finally:
        engine.close()
    # The template is part of the fingerprint, hence of every answer's and probe's key.
    assert engine.fingerprint != without and str(engine.fingerprint).startswith(str(without) + "+")


def test_lora_on_a_base_model_with_the_plain_template(base_model, data, tmp_path):
    with pytest.raises(EmkitError, match="prompt_template"):
        train_local(tiny(data, tmp_path / "refused", model=base_model))
    said = Lines()
    config = tiny(
        data,
        tmp_path / "plain",
        model=base_model,
        prompt_template="plain",
        eval_steps=2,
        store=str(tmp_path / "run"),
    )
    result = train_local(config, console=said, probe=True)
    assert result.steps == 2 and result.stats["kept"] == 6
    assert any("prompt template plain" in line for line in said.lines)
    # The probe ran on the base model during training, in the template's format (it would refuse without).
    probes = [r for r in result.dynamics if r["hook"] == "probe"]
    assert [r["step"] for r in probes] == [0, 2] and all(r["n_pairs"] > 0 for r in probes)
    summary = json.loads((result.out / "emkit_train.json").read_text())
    assert summary["config"]["prompt_template"] == "plain"
    engine = open_engine(result.model, {"device": "cpu", "prompt_template": "plain"})
    try:
        [answer] = engine.generate([CONVERSATION[1:2]], SamplingParams(max_new_tokens=8, seed=0))
        assert isinstance(answer.text, str) and answer.finish_reason in ("stop", "length")
    finally:
        engine.close()


def test_full_fine_tuning_prints_its_memory_and_writes_a_loadable_model(data, tmp_path):
    import torch
    from safetensors.torch import load_file

    from emkit.engines.embedded import ensure_converted

    said = Lines()
    out = tmp_path / "full"
    config = tiny(data, out, model="embedded/smollm2-135m", adapter="full", store=str(tmp_path / "run"))
    result = train_local(config, console=said)
    memory = [i for i, line in enumerate(said.lines) if "full fine-tuning of" in line]
    training = [i for i, line in enumerate(said.lines) if "all weights (full fine-tuning)" in line]
    assert memory and training and memory[0] < training[0]  # said before training starts
    assert "GiB per device" in said.lines[memory[0]] and "optimizer states" in said.lines[memory[0]]
    assert result.model == f"hf/{out}" and result.engine == "transformers" and result.steps == 2
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    tuned = load_file(str(out / "model.safetensors"))
    base = load_file(str(Path(ensure_converted()) / "model.safetensors"))
    changed = [k for k in base if k in tuned and not torch.equal(base[k], tuned[k])]
    assert len(changed) > len(base) // 2  # all weights trained, not a few adapter matrices
    summary = json.loads((out / "emkit_train.json").read_text())
    assert summary["config"]["adapter"] == "full"
    from emkit.store import RunStore
    from emkit.store_records import TRAIN_KIND

    with RunStore(tmp_path / "run") as store:  # the run store's training record says it too
        assert store.get_record(TRAIN_KIND, summary["run_key"])["config"]["adapter"] == "full"
    engine = open_engine(result.model, {"device": "cpu"})
    try:
        assert engine.fingerprint == f"trained:{summary['run_key']}"
        [answer] = engine.generate([CONVERSATION[1:2]], SamplingParams(max_new_tokens=4, seed=0))
        assert answer.usage["completion_tokens"] >= 1
    finally:
        engine.close()
