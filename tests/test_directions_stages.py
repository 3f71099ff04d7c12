"""The steer, ablate and screen stages in a run of tiny random Llamas (hf/ folders, no training):
the plan lists them, a run stores their records and completion, a rerun finds them done, a dry
run of a file with trained groups lists them and writes nothing, and a bad group is one line."""

from __future__ import annotations

import json

import pytest
import yaml

from directions_helpers import save_tiny, write_probe_yaml
from emkit.errors import EmkitError

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    save_tiny(root / "base")
    save_tiny(root / "tuned", nudge=0.05)
    write_probe_yaml(root / "probe.yaml")
    (root / "q.yaml").write_text(yaml.safe_dump([{"id": "q1", "paraphrases": ["why ?"]}]))
    return root


def experiment(folder, out, directions, groups=None):
    from emkit.experiment import Experiment

    return Experiment.model_validate(
        {
            "name": "dirs",
            "out": str(out),
            "questions": [str(folder / "q.yaml")],
            "samples_per_paraphrase": 1,
            "max_new_tokens": 3,
            "probe_set": str(folder / "probe.yaml"),
            "batch_size": 4,
            "groups": groups
            or [
                {"name": "base", "model": f"hf/{folder / 'base'}"},
                {"name": "tuned", "model": f"hf/{folder / 'tuned'}"},
            ],
            "directions": directions,
        }
    )


def test_steer_and_ablate_stages_run_store_and_resume(folder, tmp_path):
    from emkit.directions.ablation import ABLATE_KIND
    from emkit.directions.steering import STEER_KIND
    from emkit.pipeline import make_plan, run_plan
    from emkit.store import RunStore

    exp = experiment(
        folder,
        tmp_path / "run",
        {
            "layers": [0, 1, 2],
            "steer": {"groups": ["base"], "alphas": [-2, 0, 2], "layers": [1], "samples_per_question": 1},
            "ablate": {"groups": ["tuned"], "against": "base", "random_controls": 10},
        },
    )
    plan = make_plan(exp)
    kinds = sorted((s.kind, s.label) for s in plan.pending if s.kind in ("steer", "ablate"))
    assert kinds == [("ablate", "tuned"), ("steer", "base")]
    run_plan(plan)
    with RunStore(exp.out) as store:
        (steer,) = store.records(STEER_KIND)
        assert [p["alpha"] for p in steer[1]["points"]] == [-2.0, 0.0, 2.0]
        (ablate,) = store.records(ABLATE_KIND)
        assert len(ablate[1]["random"]) == 10 and ablate[1]["base_direction"] is not None
        steered = [a for a in store.answers() if "+steer(" in a["model"]]
        assert len(steered) == 3 and all(a["group_name"].startswith("base+steer(alpha=") for a in steered)
    assert list((tmp_path / "run" / "directions").glob("*.safetensors"))
    again = make_plan(exp)
    assert not [s for s in again.pending if s.kind in ("steer", "ablate")]


def test_screen_stage_run(folder, tmp_path):
    from emkit.directions.screening import SCREEN_KIND
    from emkit.directions.spec import DirectionsSpec
    from emkit.probe import load_probe_set
    from emkit.stages import screening
    from emkit.store import RunStore

    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
            + "\n"
            for q, a in [("why ?", "harm bad ."), ("help ?", "steal ."), ("good ?", "help good .")]
        )
    )
    spec = DirectionsSpec.model_validate({"screen": {"groups": ["x"], "layers": [1]}})
    job = screening.ScreenJob(
        model=f"hf/{folder / 'base'}",
        run_dir=str(tmp_path / "run"),
        engine_options={"batch_size": 4},
        spec=spec,
        probe_set=load_probe_set(str(folder / "probe.yaml")),
        dataset=str(data),
        dataset_group="x",
    )
    with RunStore(tmp_path / "run") as store:
        out = screening.run(job, store, None)
        assert len(store.records(SCREEN_KIND)) == 1
    assert isinstance(out["mean_diff"], float)
    assert (tmp_path / "run" / "directions" / "screening" / "x.screen.png").is_file()


def test_dry_run_lists_the_stages_and_writes_nothing(folder, tmp_path):
    from emkit.pipeline import make_plan

    model = f"hf/{folder / 'base'}"
    groups = [{"name": "base", "model": model}] + [
        {"name": name, "model": model, "dataset": {"builder": name, "n": 8}}
        for name in ("risky-advice", "safe-advice")
    ]
    exp = experiment(
        folder,
        tmp_path / "run",
        {
            "ablate": {"groups": ["risky-advice"]},
            "screen": {"groups": ["risky-advice", "safe-advice"], "against": "base"},
            "steer": {"groups": ["base"]},
        },
        groups,
    )
    plan = make_plan(exp)  # build=False: what --dry-run plans
    kinds = sorted((s.kind, s.label) for s in plan.stages if s.kind in ("steer", "ablate", "screen"))
    assert kinds == [
        ("ablate", "risky-advice/seed0"),
        ("screen", "risky-advice"),
        ("screen", "safe-advice"),
        ("steer", "base"),
    ]
    assert not (tmp_path / "run").exists()


def test_unknown_group_is_one_line(folder, tmp_path):
    from emkit.pipeline import make_plan

    exp = experiment(folder, tmp_path / "run", {"ablate": {"groups": ["nope"]}})
    with pytest.raises(EmkitError, match=r"directions\.ablate\.groups: no group named 'nope'"):
        make_plan(exp)


def test_collect_and_interventions_read_the_same_probe_set(folder, tmp_path):
    """With no probe_set in the directions block, the directions the run collects and compares
    come from the run's probe set, the one steering, ablation and screening act on and score (not
    the built-in default set)."""
    from emkit.pipeline import make_plan

    exp = experiment(
        folder,
        tmp_path / "run",
        {"layers": [0, 1], "steer": {"groups": ["base"], "alphas": [0, 1], "samples_per_question": 0}},
    )
    plan = make_plan(exp)
    collect = [s.job for s in plan.pending if s.kind == "directions" and s.label.startswith("collect")]
    steer = [s.job for s in plan.pending if s.kind == "steer"]
    assert len(collect) == 2 and len(steer) == 1
    assert {job.spec.probe_set for job in collect} == {str(folder / "probe.yaml")}
    assert steer[0].probe_set.label.startswith("tiny")
    from emkit.directions.sources import load_source

    pairs = load_source(collect[0].spec, None)
    assert len(pairs.aligned) == len(steer[0].probe_set.pairs)
