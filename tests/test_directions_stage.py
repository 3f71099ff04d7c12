"""The directions stage, its report section and the ``emkit directions`` verbs, on tiny random
Llamas standing in for the experiment's models (no hub, no embedded model loaded): plan, run,
resume, compare, report; a dry run loads nothing; bad groups and wrong widths are one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from directions_core_helpers import ALIGNED, MISALIGNED, PROMPTS, tiny_engine, write_pairs
from emkit.cli import main
from emkit.errors import EmkitError
from emkit.experiment import load_experiment

pytest.importorskip("torch")
pytest.importorskip("transformers")

SEEDS = {"embedded/smollm2-135m": 0, "hf/tiny/other": 1}


def _experiment(tmp_path: Path, groups: str = "", directions: str = "") -> Path:
    a = write_pairs(tmp_path / "a.jsonl", PROMPTS, ALIGNED)
    m = write_pairs(tmp_path / "m.jsonl", PROMPTS, MISALIGNED)
    groups = (
        groups or "  - {name: base, model: embedded/smollm2-135m}\n  - {name: other, model: hf/tiny/other}\n"
    )
    path = tmp_path / "exp.yaml"
    path.write_text(
        f"name: dirs\nout: {json.dumps(str(tmp_path / 'run'))}\nprobe: false\ngroups:\n{groups}"
        f"directions:\n  source: files\n  aligned_file: {json.dumps(str(a))}\n"
        f"  misaligned_file: {json.dumps(str(m))}\n  resamples: 20\n{directions}",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def tiny_models(monkeypatch):
    """Every model a stage opens is a tiny random Llama (one seed per model name)."""
    import emkit.stages.units

    opened: list[str] = []

    def fake_open(name, run_dir=None, options=None, **_):
        opened.append(name)
        return tiny_engine(seed=SEEDS[name])

    monkeypatch.setattr(emkit.stages.units, "open_unit_engine", fake_open)
    return opened


def _plan(path: Path):
    from emkit.stages.base import PlanContext
    from emkit.stages.registry import stage
    from emkit.store import RunStore

    exp = load_experiment(path)
    store = RunStore(exp.out)
    module = stage("directions")
    return module, store, module.plan(PlanContext(exp, Path(exp.out), built=True), store, [])


def test_stage_collects_each_model_compares_resumes_and_reports(tmp_path, tiny_models, capsys):
    from emkit.report import build_report
    from emkit.store_records import STAGE_KIND

    path = _experiment(tmp_path)
    module, store, steps = _plan(path)
    assert [s.label for s in steps] == ["collect base", "collect other", "compare"]
    assert not any(s.done for s in steps)
    for step in steps:
        out = module.run(step.job, store, None)
        if step.record:
            store.put_record(STAGE_KIND, step.key, {"status": "done", "kind": step.kind, **out})
    assert tiny_models == ["embedded/smollm2-135m", "hf/tiny/other"]
    _, store2, again = _plan(path)
    assert all(s.done for s in again) and [s.key for s in again] == [s.key for s in steps]
    compare = store2.get_record(STAGE_KIND, steps[-1].key)["comparisons"][0]
    assert compare["first"] == "base" and compare["second"] == "other" and len(compare["cosine"]) == 3
    # both models read the same responses: the interval is paired, stored with the comparison
    assert compare["interval"]["design"] == "paired" and compare["interval"]["unit"] == "pairs"
    assert len(compare["corrected_low"]) == len(compare["corrected_high"]) == 3
    store.close()
    store2.close()
    out = build_report(tmp_path / "run")
    html = (out / "index.html").read_text()
    assert "Misalignment directions" in html and "base vs other" in html
    assert (out / "directions_cosine.png").is_file() and (out / "directions_base.png").is_file()
    section = json.loads((out / "metrics.json").read_text())["sections"]["directions"]
    assert [d["label"] for d in section["directions"]] == ["base", "other"]
    assert section["comparisons"][0]["cosine"] == pytest.approx(compare["cosine"])
    assert section["comparisons"][0]["corrected_low"] == compare["corrected_low"]  # seeded: the same
    assert "noise-corrected cosine [95% CI]" in html
    # a vectors file lost: the report still builds and says which
    other = next(d for d in section["directions"] if d["label"] == "other")
    (tmp_path / "run" / other["file"]).rename(tmp_path / "kept.safetensors")
    html = (build_report(tmp_path / "run") / "index.html").read_text()
    assert "Vectors file missing (rerun the directions stage to rebuild): other" in html
    (tmp_path / "kept.safetensors").rename(tmp_path / "run" / other["file"])
    # the CLI compares the run's stored sets, and refuses a set of another width in one line
    from emkit.directions.vectors import DirectionSet, save_directions

    js, png = tmp_path / "cos.json", tmp_path / "cos.png"
    assert main(["directions", "compare", str(tmp_path / "run"), "--json", str(js), "--plot", str(png)]) == 0
    assert json.loads(js.read_text())[0]["cosine"] == pytest.approx(compare["cosine"]) and png.is_file()
    assert json.loads(js.read_text())[0]["corrected_high"] == compare["corrected_high"]
    assert "paired over the pairs, 1000 resamples" in capsys.readouterr().out
    narrow = save_directions(tmp_path / "narrow.safetensors", DirectionSet((0,), np.ones((1, 8)), np.ones(1)))
    capsys.readouterr()
    assert main(["directions", "compare", str(tmp_path / "run"), str(narrow)]) == 2
    error = capsys.readouterr().err
    assert (
        "width 8" in error and "residual stream is 16 wide" in error and len(error.strip().splitlines()) == 1
    )


def test_dry_run_lists_steps_and_opens_no_model(tmp_path, tiny_models, capsys):
    path = _experiment(tmp_path)
    assert main(["run", str(path), "--dry-run"]) == 0
    shown = capsys.readouterr().out
    assert "collect base" in shown and "collect other" in shown and "compare" in shown
    assert tiny_models == [] and not (tmp_path / "run" / "directions").exists()


def test_bad_groups_are_one_line(tmp_path, tiny_models):
    with pytest.raises(EmkitError, match=r"directions.groups: no group named 'nope' \(groups: base, other\)"):
        _plan(_experiment(tmp_path, directions="  groups: [nope]\n"))
    api = "  - {name: base, model: embedded/smollm2-135m}\n  - {name: gpt, model: openai/gpt-4o}\n"
    with pytest.raises(EmkitError, match=r"gpt \(openai/gpt-4o\) has no weights here; .* local model"):
        _plan(_experiment(tmp_path, groups=api, directions="  groups: [base, gpt]\n"))
    _, store, steps = _plan(_experiment(tmp_path, groups=api))  # default: the local groups only
    assert [s.label for s in steps] == ["collect base"]
    store.close()


def test_judged_source_without_judged_answers_is_listed_pending_not_run(tmp_path, tiny_models):
    path = _experiment(tmp_path)
    path.write_text(path.read_text().replace("source: files", "source: judged"), encoding="utf-8")
    _, store, steps = _plan(path)
    assert [s.label for s in steps] == ["collect base", "collect other", "compare"]
    assert all(s.job is None and not s.done and s.detail.startswith("pending") for s in steps)
    store.close()
