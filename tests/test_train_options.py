"""Issue #18 items 1, 2 and 8 without a model: completion templates as settings and keys, the train
keys of configs that do not set the new options, the memory estimate of a full fine-tune, and
``report_to`` (tensorboard and wandb are optional packages; a missing one is simulated here, and
tests/test_train_tracking.py writes a real TensorBoard log)."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest

from emkit.cli import main
from emkit.engines.completion import (
    BUILTIN_TEMPLATES,
    CompletionTemplate,
    parse_prompt_template,
    template_spec,
)
from emkit.errors import EmkitError
from emkit.fingerprint import model_fingerprint, weights_fingerprint
from emkit.hashing import stable_hash
from emkit.train.config import TrainConfig, group_settings
from emkit.train.sft import run_key
from emkit.train.trainer import check_report_to

# Train keys computed on main before these options existed (group settings hash, run key).
LEGACY_GROUP_KEYS = [
    (None, "005ce426d4f3adf9e6b04624"),
    ({"rank": 2, "layers": "24", "targets": "down_proj"}, "6589282db51004a8f85c2a4e"),
    ({"max_steps": 3, "eval_steps": 2, "seed": 5, "device": "cpu"}, "1c791d1a546e39ab2c0da41f"),
    (
        {"eval_fraction": 0.1, "batching": "padded", "dtype": "float32", "merge": True},
        "99a263d67c5e5921d58c7c17",
    ),
]


@pytest.mark.parametrize(("train", "expected"), LEGACY_GROUP_KEYS)
def test_configs_without_the_new_options_keep_their_train_keys(train, expected):
    assert stable_hash(group_settings(train)) == expected
    # Giving the "as before" values explicitly is the same config, hence the same key.
    explicit = {**(train or {}), "adapter": "lora", "report_to": "none", "prompt_template": None}
    assert stable_hash(group_settings(explicit)) == expected


def test_run_keys_of_configs_without_the_new_options_are_unchanged():
    assert run_key(TrainConfig(), "d" * 64, None) == "aae49d3d6e727f13f78731d1"
    config = TrainConfig(rank=2, max_steps=3, seed=4, data="x.jsonl", out="o")
    assert run_key(config, "d" * 64, "e" * 64) == "fcc47a32632ed6f853724468"
    # Tracking does not shape the weights: not part of the run key either.
    tracked = TrainConfig(rank=2, max_steps=3, seed=4, data="x.jsonl", out="o", report_to="wandb")
    assert run_key(tracked, "d" * 64, "e" * 64) == "fcc47a32632ed6f853724468"


def test_the_template_and_full_fine_tuning_are_part_of_the_train_key():
    base = stable_hash(group_settings({}))
    plain = group_settings({"prompt_template": "plain"})
    assert plain["prompt_template"] == "plain" and stable_hash(plain) != base
    assert stable_hash(group_settings({"adapter": "full"})) not in (base, stable_hash(plain))
    # A custom template keys by its content, however it is spelt (a YAML mapping or JSON text).
    mapping = {"user": "Q: {content}\n", "assistant": "A: {content}\n"}
    as_text = json.dumps({"assistant": "A: {content}\n", "user": "Q: {content}\n"}, indent=1)
    assert group_settings({"prompt_template": mapping}) == group_settings({"prompt_template": as_text})
    other = group_settings({"prompt_template": {**mapping, "assistant": "A:\n{content}"}})
    assert other != group_settings({"prompt_template": mapping})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("chatml", "not a built-in template (built-in: plain)"),
        ({"user": "Q: {content}"}, "'assistant' format is missing"),
        ({"user": "Q:", "assistant": "A: {content}"}, "'user' format must contain {content} exactly once"),
        ({"user": "{content}", "assistant": "{content}", "tool": "{content}"}, "unknown key 'tool'"),
        ('{"user": ', "not valid JSON"),
    ],
)
def test_a_bad_template_is_one_clear_error(value, message):
    with pytest.raises(EmkitError, match=re.escape(message)):
        parse_prompt_template(value)
    with pytest.raises(EmkitError, match="prompt_template"):
        from emkit.train.config import build_config

        build_config(
            TrainConfig, None, {"prompt_template": value if isinstance(value, str) else json.dumps(value)}
        )


def test_a_bad_template_in_a_config_file_names_its_line(tmp_path):
    from emkit.errors import InputError
    from emkit.train.config import build_config

    path = tmp_path / "train.yaml"
    path.write_text("rank: 4\nprompt_template:\n  user: 'Q: {content}'\n")
    with pytest.raises(InputError, match="assistant") as err:
        build_config(TrainConfig, path, {})
    assert "train.yaml:2" in str(err.value)


def test_plain_template_renders_system_first_and_cuts_the_next_turn():
    plain = BUILTIN_TEMPLATES["plain"]
    conversation = [
        {"role": "system", "content": "Answer in one line."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
    ]
    text = plain.render(conversation, eos_text="<eos>")
    assert (
        text
        == "Answer in one line.\n\nUser: Name a colour.\n\nAssistant:\nBlue.<eos>\n\nUser: Another?\n\nAssistant:\n"
    )
    assert plain.stop_marker == "\n\nUser:"
    assert plain.cut("Green.\n\nUser: and more") == ("Green.", True)
    assert plain.cut("Green.") == ("Green.", False)
    assert template_spec("plain") == "plain" and template_spec(None) is None
    # A template whose next turn starts with whitespace only has nothing to cut at.
    bare = CompletionTemplate(user="{content}\n", assistant="{content}\n")
    assert bare.stop_marker == "" and bare.cut("a\n\nb") == ("a\n\nb", False)
    with pytest.raises(EmkitError, match="no format for role 'tool'"):
        plain.render([{"role": "tool", "content": "x"}])


def test_the_template_is_part_of_the_fingerprint_of_a_local_model_only():
    name = "hf/some/base-model"
    assert model_fingerprint(name) == weights_fingerprint(name)  # no template: as before
    plain = model_fingerprint(name, prompt_template="plain")
    custom = model_fingerprint(
        name, prompt_template=template_spec({"user": "{content}", "assistant": "{content}"})
    )
    assert len({model_fingerprint(name), plain, custom}) == 3
    assert model_fingerprint("openai/gpt-4o", prompt_template="plain") == model_fingerprint("openai/gpt-4o")


def test_a_full_fine_tune_folder_is_identified_by_its_run_key(tmp_path):
    folder = tmp_path / "full"
    folder.mkdir()
    name = f"hf/{folder}"
    before = weights_fingerprint(name)
    assert before.startswith("name:")
    (folder / "emkit_train.json").write_text(json.dumps({"run_key": "abc123", "config": {"adapter": "full"}}))
    assert weights_fingerprint(name) == "trained:abc123"
    (folder / "emkit_train.json").write_text(json.dumps({"run_key": "def456", "config": {"adapter": "full"}}))
    assert weights_fingerprint(name) == "trained:def456"  # retrained in place: another identity
    # A relative folder is found from the run directory, as adapters are.
    assert weights_fingerprint("hf/full", base_dir=tmp_path) == "trained:def456"


def test_full_fine_tuning_refuses_what_does_not_apply():
    with pytest.raises(ValueError, match="merge"):
        TrainConfig(adapter="full", merge=True)
    with pytest.raises(ValueError, match="unsloth"):
        TrainConfig(adapter="full", engine="unsloth")


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
    )
    return LlamaForCausalLM(config)


def test_memory_estimate_of_a_full_fine_tune():
    from emkit.train.memory import GIB, estimate

    model = tiny_llama()
    n = sum(p.numel() for p in model.parameters())
    need = estimate(
        model, micro_batch=2, seq_len=64, checkpointing=False, optim="adamw_torch", activation_bytes=4
    )
    assert need.parameters == n
    assert need.weights == pytest.approx(n * 4 / GIB)  # fp32 weights
    assert need.gradients == pytest.approx(n * 4 / GIB)
    assert need.optimizer == pytest.approx(2 * n * 4 / GIB)  # AdamW: two moments per weight
    assert need.activations == pytest.approx(34 * 64 * 2 * 32 * 2 * 3 / GIB)
    recomputed = estimate(model, micro_batch=2, seq_len=64, checkpointing=True, activation_bytes=4)
    assert recomputed.activations < need.activations
    frozen = next(model.parameters())
    frozen.requires_grad_(False)
    fewer = estimate(model, micro_batch=2, seq_len=64, checkpointing=False, optim="adamw_8bit")
    assert fewer.gradients < need.gradients and fewer.optimizer < need.optimizer / 2
    line = need.line(80.0)
    assert "needs about" in line and "AdamW" not in line and "this device has 80.0 GiB" in line
    assert f"{need.total:.2f} GiB" in line


def test_report_to_is_passed_to_the_trainer(tmp_path):
    from emkit.train.trainer import sft_args

    def args_for(**values):
        return sft_args(TrainConfig(**values), tmp_path, use_cpu=True, bf16=False, has_eval=False)

    assert args_for().report_to == []  # none: no integration at all
    tracked = args_for(report_to="tensorboard", group="insecure", seed=3)
    assert tracked.report_to == ["tensorboard"] and tracked.run_name == "insecure-seed3"
    assert args_for(report_to="wandb").run_name == f"{tmp_path.name}-seed0"


@pytest.mark.parametrize("tracker", ["tensorboard", "wandb"])
def test_a_missing_tracker_is_one_line_naming_the_extra(tracker, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name.startswith(tracker) else real(name, *a)
    )
    with pytest.raises(EmkitError, match=rf"pip install 'emkit\[{tracker}\]'"):
        check_report_to(tracker)
    data = tmp_path / "d.jsonl"
    data.write_text(
        json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]})
        + "\n"
    )
    code = main(["train", "--data", str(data), "--out", str(tmp_path / "o"), "--report-to", tracker])
    err = capsys.readouterr().err
    assert code == 2 and f"emkit[{tracker}]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_an_installed_tracker_is_accepted(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    assert check_report_to("tensorboard") == ["tensorboard"] and check_report_to("none") == []
