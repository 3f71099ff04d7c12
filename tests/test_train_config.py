"""Training config (paper defaults, typos refused), length-grouped batching, cost estimates."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emkit.errors import EmkitError, InputError
from emkit.train.batching import GroupedSampler, padded_tokens
from emkit.train.config import PAPER_TARGETS, OpenAIFineTuneConfig, TrainConfig, build_config
from emkit.train.openai_ft import CostEstimate, estimate_cost, job_key, price_for


def test_defaults_are_the_papers_open_model_run():
    cfg = TrainConfig()
    assert (cfg.rank, cfg.alpha, cfg.dropout, cfg.rslora) == (32, 64.0, 0.0, True)
    assert (
        cfg.targets
        == list(PAPER_TARGETS)
        == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    assert (cfg.lr, cfg.lr_scheduler, cfg.warmup_steps, cfg.weight_decay) == (1e-5, "linear", 5, 0.01)
    assert (cfg.epochs, cfg.max_length) == (1.0, 2048)
    assert cfg.effective_batch_size(on_gpu=True) == cfg.effective_batch_size(on_gpu=False) == 16
    assert cfg.layers is None and cfg.eval_fraction is None


def test_openai_defaults_are_the_papers_gpt4o_run():
    cfg = OpenAIFineTuneConfig()
    assert cfg.model == "gpt-4o-2024-08-06"
    assert cfg.hyperparameters() == {"n_epochs": 1, "batch_size": 4, "learning_rate_multiplier": 2.0}


def test_yaml_then_cli_overrides(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("rank: 1\nlayers: 24\ntargets: down_proj\nlr: 2.0e-5\nseed: 3\n")
    cfg = build_config(TrainConfig, path, {"seed": 7, "lr": None})
    assert cfg.rank == 1 and cfg.layers == [24] and cfg.targets == ["down_proj"]
    assert cfg.lr == 2e-5  # None means "not given on the command line"
    assert cfg.seed == 7  # the command line wins over the file


def test_unknown_key_in_yaml_is_an_error_naming_file_and_key(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("learning_rat: 1e-4\n")
    with pytest.raises(InputError) as info:
        build_config(TrainConfig, path, {})
    assert str(path) in str(info.value) and "learning_rat" in str(info.value)
    assert "unknown key" in str(info.value)


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"rank": 0}, "rank"),
        ({"eval_fraction": 1.5}, "eval_fraction"),
        ({"batching": "fast"}, "batching"),
        ({"eval_fraction": 0.1, "eval_file": "x.jsonl"}, "eval_file"),
    ],
)
def test_bad_values_are_refused(overrides, field):
    with pytest.raises(EmkitError) as info:
        build_config(TrainConfig, None, overrides)
    assert field in str(info.value)


def test_bad_command_line_value_is_blamed_on_the_option_not_the_file(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("rank: 4\n")
    with pytest.raises(EmkitError) as info:
        build_config(TrainConfig, path, {"alpha": -1.0})
    assert "training option 'alpha'" in str(info.value) and "train.yaml" not in str(info.value)


def test_bad_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("rank: 1\nalpha: [1, 2\n")
    with pytest.raises(InputError, match=r"bad\.yaml:\d+"):
        build_config(TrainConfig, path, {})


# -- batching ---------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 500), min_size=1, max_size=80),
    group=st.integers(1, 20),
    seed=st.integers(0, 10_000),
)
def test_grouped_sampler_keeps_each_steps_examples_and_sorts_within(lengths, group, seed):
    import torch

    order = list(GroupedSampler(lengths, group, seed))
    generator = torch.Generator()
    generator.manual_seed(seed)
    shuffled = torch.randperm(len(lengths), generator=generator).tolist()
    assert sorted(order) == list(range(len(lengths)))  # a permutation: every row once
    for start in range(0, len(order), group):
        block = order[start : start + group]
        # Same examples per optimizer step as a plain seeded shuffle ...
        assert set(block) == set(shuffled[start : start + group])
        # ... sorted longest first inside the step.
        assert [lengths[i] for i in block] == sorted((lengths[i] for i in block), reverse=True)


def test_grouped_sampler_is_seeded_and_pads_less():
    import torch

    rng = random.Random(0)
    lengths = [rng.randint(100, 1000) for _ in range(256)]
    a, b, c = (list(GroupedSampler(lengths, 16, s)) for s in (1, 1, 2))
    assert a == b and a != c
    sampler = GroupedSampler(lengths, 16, 1)
    assert list(sampler) == a and list(sampler) != a  # a second pass is the next epoch's order
    sampler.set_epoch(0)
    assert list(sampler) == a and list(sampler) == a  # an explicit epoch fixes the order
    generator = torch.Generator()
    generator.manual_seed(1)
    random_order = torch.randperm(len(lengths), generator=generator).tolist()
    real = sum(lengths)
    assert padded_tokens(lengths, a, 2) < padded_tokens(lengths, random_order, 2)
    assert padded_tokens(lengths, a, 2) >= real


# -- provider cost and job identity -------------------------------------------------------------------
def test_price_table_and_estimate():
    assert price_for("gpt-4o-2024-08-06") == 25.0
    assert price_for("gpt-4o") == 25.0  # an undated alias takes its family's price
    assert price_for("gpt-4o-mini") == 3.0
    assert price_for("some-other-model") is None
    assert price_for("some-other-model", 7.5) == 7.5
    rows = [
        {"messages": [{"role": "user", "content": "a" * 400}, {"role": "assistant", "content": "b" * 400}]}
    ]
    estimate = estimate_cost(rows, OpenAIFineTuneConfig(n_epochs=2))
    assert estimate.epochs == 2 and estimate.trained_tokens == 2 * estimate.tokens
    assert 200 <= estimate.tokens <= 230
    assert estimate.usd == pytest.approx(estimate.tokens * 2 * 25.0 / 1e6)
    assert "$" in estimate.describe()
    assert "no price" in CostEstimate(10, 1, None, False).describe()


def test_job_key_changes_with_file_and_params_only():
    base = OpenAIFineTuneConfig()
    assert job_key("sha1", base) == job_key("sha1", OpenAIFineTuneConfig())
    assert job_key("sha1", base) != job_key("sha2", base)
    assert job_key("sha1", base) != job_key("sha1", OpenAIFineTuneConfig(n_epochs=4))
    assert job_key("sha1", base) != job_key("sha1", OpenAIFineTuneConfig(suffix="x"))


def test_micro_batching_and_checkpointing_follow_the_device_unless_given():
    cfg = TrainConfig()
    assert cfg.micro_batching(on_gpu=True) == (2, 8) and cfg.checkpointing(on_gpu=True) is True
    assert cfg.micro_batching(on_gpu=False) == (1, 16) and cfg.checkpointing(on_gpu=False) is False
    # One of the two given: the other keeps the effective batch at 16.
    assert TrainConfig(batch_size=4).micro_batching(on_gpu=False) == (4, 4)
    assert TrainConfig(grad_accum=2).micro_batching(on_gpu=True) == (8, 2)
    # Both given: as given, whatever the product; checkpointing as given on both devices.
    assert TrainConfig(batch_size=3, grad_accum=3).micro_batching(on_gpu=False) == (3, 3)
    assert TrainConfig(gradient_checkpointing=True).checkpointing(on_gpu=False) is True
    assert TrainConfig(gradient_checkpointing=False).checkpointing(on_gpu=True) is False
