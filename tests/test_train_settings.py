"""One schema per kind of training settings: a group's train settings, the provider's, and the CLI
options generated from them (issue #14: one source of truth for names, defaults and help)."""

from __future__ import annotations

import json

import pytest

from emkit.cli import app
from emkit.experiment import ProviderSpec
from emkit.store import RunStore
from emkit.train.config import (
    UNIT_FIELDS,
    OpenAIFineTuneConfig,
    ProviderSettings,
    TrainConfig,
    TrainSettings,
    build_config,
    group_settings,
)
from emkit.train.openai_ft import FT_KIND, job_key, run_provider_job
from fake_openai import FakeOpenAI

# What the planner listed by hand before the settings had their own class (train keys hash the rest).
LEGACY_UNIT_FIELDS = ("model", "data", "out", "seed", "store", "group", "device")


@pytest.mark.parametrize(
    "train",
    [
        None,
        {},
        {"rank": 2, "layers": "24", "targets": "down_proj"},
        {"max_steps": 3, "eval_steps": 2, "seed": 5, "device": "cpu"},
        {"eval_fraction": 0.1, "batching": "padded", "dtype": "float32", "merge": True},
    ],
)
def test_group_settings_are_what_the_planner_hashed(train):
    legacy = TrainConfig.model_validate(train or {}).model_dump(mode="json")
    legacy = {k: v for k, v in legacy.items() if k not in LEGACY_UNIT_FIELDS}
    settings = group_settings(train)
    assert json.dumps(settings) == json.dumps(legacy)  # same keys, values and order
    assert set(UNIT_FIELDS) == set(LEGACY_UNIT_FIELDS)
    assert set(settings) == set(TrainSettings.model_fields)


def test_both_spellings_of_the_provider_settings_load():
    short = ProviderSpec(epochs=4, batch_size=39, lr_multiplier=2.0)
    api = ProviderSpec.model_validate({"n_epochs": 4, "batch_size": 39, "learning_rate_multiplier": 2.0})
    assert short == api
    # The dump is hashed into a provider group's train key: the short names, as before.
    assert short.model_dump() == {
        "name": "openai",
        "epochs": 4,
        "batch_size": 39,
        "lr_multiplier": 2.0,
        "base_url": None,
    }
    assert isinstance(short, ProviderSettings)
    job = OpenAIFineTuneConfig(epochs=2, lr_multiplier=1.5)
    assert job == OpenAIFineTuneConfig(n_epochs=2, learning_rate_multiplier=1.5)
    assert job.hyperparameters() == {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 1.5}
    # A job's key and record keep the API's names (a recorded, paid job is found again).
    assert set(job.job_params()) == {
        "model",
        "n_epochs",
        "batch_size",
        "learning_rate_multiplier",
        "suffix",
        "seed",
    }
    assert job_key("sha", job) == job_key(
        "sha", OpenAIFineTuneConfig(n_epochs=2, learning_rate_multiplier=1.5)
    )


def test_a_command_line_option_wins_over_the_other_spelling_in_the_file(tmp_path):
    path = tmp_path / "ft.yaml"
    path.write_text("n_epochs: 3\nlearning_rate_multiplier: 1.5\n")
    assert build_config(OpenAIFineTuneConfig, path, {"epochs": 2}).epochs == 2
    assert build_config(OpenAIFineTuneConfig, path, {}).hyperparameters()["n_epochs"] == 3


def test_every_described_field_is_an_option_with_its_help():
    import typer.main

    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    options = {p.name: p for p in command.params}
    for cls in (TrainConfig, OpenAIFineTuneConfig):
        for name, field in cls.model_fields.items():
            if field.description and name != "name":
                assert name in options, name
                assert field.description in options[name].help
    assert "(default 32)" in options["rank"].help  # the default comes from the field
    for name in ("data", "out", "model", "seed", "provider", "config", "probe", "yes", "wait"):
        assert options[name].help


def test_run_provider_job_maps_a_group_to_one_job(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-provider-job-0123456789")
    data = tmp_path / "d.jsonl"
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    data.write_text(json.dumps(row) + "\n")
    with FakeOpenAI(ft_validating_polls=0, ft_running_polls=0) as srv:
        spec = ProviderSpec(epochs=2, base_url=srv.base_url)
        said: list[str] = []
        args = {"base": "openai/gpt-4o-2024-08-06", "data": data, "group": "insecure", "seed": 1}
        first = run_provider_job(spec.model_dump(), **args, store=tmp_path / "run", say=said.append)
        (job,) = srv.stats.jobs.values()
        with RunStore(tmp_path / "run") as store:
            again = run_provider_job(spec, **args, store=store, say=said.append)
            (record,) = [v for _, v in store.records(FT_KIND)]
        assert len(srv.stats.jobs) == 1  # the same group and seed: the same job, not a second one
    assert first == again == {"model": record["model"], "job_id": record["job_id"]}
    assert job["model"] == "gpt-4o-2024-08-06" and job["suffix"] == "insecure-s1" and job["seed"] == 1
    assert job["hyperparameters"] == {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 2.0}
