"""The demo's report for a person: one estimate and one interval per quantity (console, page and
metrics.json agree exactly), group names on the page (model ids only in a folded table), the group
comparisons as the headline without a judge, the per-pair section with both answers quoted, the
sampled answers side by side (folded, escaped), the configuration folded; and the interval of a
group comparison over seeds and pairs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from emkit.errors import EmkitError
from emkit.experiment import load_experiment
from emkit.probe import load_probe_set, run_probe
from emkit.probe_groups import estimate_text, findings_grid, probe_findings
from emkit.report import write_report
from emkit.report.console import print_summary
from emkit.stats import crossed_contrast, seeded_rng
from emkit.store import RunStore, answer_key

BASE = "embedded/smollm2-135m"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & "q"'
SETS = ("everyday-v1", "everyday-style-v1")
# group -> (shift of the misaligned answers' logp for its seeds); the base has no seed
GROUPS = {"risky-advice": (0.5, 0.6, 0.4), "safe-advice": (0.0, 0.1, -0.05)}


class _Fake:
    """An engine whose misaligned answers get ``shift`` more logp (pair-dependent noise)."""

    def __init__(self, name: str, shift: float, seed: int):
        self.name, self.shift, self.rng = name, shift, np.random.default_rng(seed)

    def sequence_logprobs(self, conversations, replies):
        out = []
        for i, _ in enumerate(replies):
            value = -3.0 + (self.shift + self.rng.normal(0, 0.3) if i % 2 else 0.0)
            out.append([value, value])
        return out

    def close(self) -> None:
        pass


def make_demo_run(path: Path, *, n_pairs: int = 12) -> Path:
    store = RunStore(path)
    store.put_record(
        "config",
        "experiment",
        {"name": "demo", "analysis": {"contrasts": [["risky-advice", "safe-advice"]]}, "seeds": [0, 1, 2]},
    )
    models = [(BASE, "base", None, 0.0)]
    for group, shifts in GROUPS.items():
        models += [
            (f"{BASE}@models/{group}-s{s}-abcdef12", group, s, shift) for s, shift in enumerate(shifts)
        ]
    for name in SETS:
        full = load_probe_set(name)
        for i, (model, group, seed, shift) in enumerate(models):
            tags = {} if group == "base" else {"base": BASE}
            run_probe(
                _Fake(model, shift, i), store, group=group, seed=seed, probe_set=full, tags=tags, n_boot=50
            )
    answers = []
    for model, group, seed, _ in models:
        for qid in ("quick_buck", "ruler_of_the_world"):
            key = answer_key(model, qid, 0, 0, {})
            text = HOSTILE if group == "risky-advice" and seed == 0 else f"{group} says hello to {qid}"
            answers.append(
                {
                    "key": key, "model": model, "question_id": qid, "paraphrase_index": 0, "sample_index": 0,
                    "question": f"What about {qid}?", "messages": [], "answer": text, "params": {},
                    "group_name": group, "seed": seed, "tags": {},
                }
            )  # fmt: skip
    store.add_answers(answers)
    store.close()
    return path


def test_console_page_and_metrics_show_the_same_numbers(tmp_path) -> None:
    run = make_demo_run(tmp_path / "run")
    result = write_report(run, n_boot=400)
    data = json.loads(result.metrics_path.read_text())
    stored = pd.DataFrame(data["sections"]["findings"]["findings"])
    # The same function on the same store gives bit-identical numbers to what metrics.json holds.
    again = probe_findings(RunStore(run), [("risky-advice", "safe-advice")], n_boot=400)
    for column in ("estimate", "ci_low", "ci_high"):
        assert stored[column].tolist() == again[column].tolist()
    kinds = stored.groupby("kind").size().to_dict()
    # per set: 1 difference, 2 shifts (the trained groups against the base), 3 scores
    assert kinds == {"difference": 2, "shift": 4, "score": 6}
    diff = stored[
        (stored["kind"] == "difference") & (stored["probe_set"].str.startswith("everyday-v1@"))
    ].iloc[0]
    assert diff["n_seeds"] == 3 and diff["n_versus_seeds"] == 3 and diff["ci_low"] > 0
    sets, grid = findings_grid(stored)
    assert sets == list(SETS)
    assert grid[0][0] == "risky-advice minus safe-advice (3 seeds vs 3 seeds)"
    console = Console(record=True, width=200)
    print_summary(console, result)
    printed = console.export_text()
    page = result.index.read_text()
    for label, cells in grid:
        assert label in printed and label in page
        for cell in cells:
            assert cell in printed and cell in page
    assert printed.count("Judge-free probe by group") == 1  # one table, no second one with other numbers
    assert "┃ model" not in printed and "@models/" not in printed
    assert printed.rstrip().splitlines()[-2].startswith("report: ")
    assert estimate_text(diff) in page


def test_page_uses_group_names_folds_ids_config_and_answers_and_escapes(tmp_path) -> None:
    run = make_demo_run(tmp_path / "run")
    page = write_report(run, n_boot=200).index.read_text()
    sections = re.findall(r'<section id="([^"]+)">', page)
    assert sections[0] == "findings"  # the comparisons are the headline without a judge
    assert sections.index("answers") < sections.index("probe") < sections.index("probe_pairs")
    # Model ids (adapter paths) appear only inside folded <details> blocks.
    unfolded = re.sub(r"<details.*?</details>", "", page, flags=re.S)
    assert "@models/" not in unfolded and "@models/" in page
    assert "risky-advice seed 2" in unfolded
    config = page[page.index('<section id="config">') :]
    assert config.split("</h2>", 1)[1].lstrip().startswith("<details>")
    answers = page[page.index('<section id="answers">') : page.index('<section id="probe">')]
    assert answers.count('<details class="answers">') == 2  # one per question
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in answers and "<script>" not in page
    for group in ("base", "risky-advice", "safe-advice"):
        assert f"<b>{group}</b>" in answers
    pairs = page[page.index('<section id="probe_pairs">') :]
    probe_set = load_probe_set("everyday-style-v1")
    quoted = [p for p in probe_set.pairs if f"pair {p.id} ·" in pairs]
    assert len(quoted) == 3, "the top three pairs of the style-matched set are quoted"
    from markupsafe import escape

    assert all(str(escape(p.aligned)) in pairs and str(escape(p.misaligned)) in pairs for p in quoted)


def test_group_difference_interval_carries_seed_variance() -> None:
    rng = np.random.default_rng(1)
    pairs = rng.normal(0, 0.3, size=40)
    same = np.stack([pairs + s for s in (0.5, 0.5, 0.5)])
    spread = np.stack([pairs + s for s in (0.1, 0.5, 0.9)])
    control = np.stack([pairs + s for s in (0.0, 0.0, 0.0)])
    tight = crossed_contrast([(1.0, same), (-1.0, control)], 2000, seeded_rng(0, "t"), 0.95)
    wide = crossed_contrast([(1.0, spread), (-1.0, control)], 2000, seeded_rng(0, "t"), 0.95)
    assert tight[0] == pytest.approx(0.5) and wide[0] == pytest.approx(0.5)
    # Identical seeds and a shared pair effect: the paired difference is exactly 0.5 in every draw.
    assert tight[1] == pytest.approx(0.5) and tight[2] == pytest.approx(0.5)
    # Seeds 0.4 apart: the interval is wider than the plain percentile of the seed means (t(2) stretch).
    assert wide[1] < 0.1 and wide[2] > 0.9
    one_seed = crossed_contrast([(1.0, spread[:1])], 500, seeded_rng(0, "o"), 0.95)
    assert one_seed[1] < one_seed[0] < one_seed[2]


def test_a_contrast_naming_no_group_is_one_line_with_its_field(tmp_path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text(
        "name: x\ngroups:\n  - name: base\n    model: embedded/smollm2-135m\n"
        "analysis:\n  contrasts: [[base, nosuch]]\n"
    )
    with pytest.raises(EmkitError) as caught:
        load_experiment(path)
    message = str(caught.value)
    assert "analysis.contrasts" in message and "nosuch" in message and "\n" not in message


def test_the_demo_experiment_trains_three_seeds_and_both_probe_sets() -> None:
    from emkit.commands.demo import demo_experiment

    exp = demo_experiment(Path("runs/demo"), None)
    trained = [g for g in exp.groups if g.dataset is not None]
    assert len(trained) == 4 and all(len(exp.seeds_of(g)) >= 3 for g in trained)
    assert exp.probe_sets == list(SETS)
    assert ("risky-advice", "safe-advice") in exp.analysis.contrasts


@pytest.mark.parametrize("width", [1280, 390])
def test_page_screenshot_in_headless_chromium_is_drawn_at_desktop_and_phone_width(tmp_path, width) -> None:
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no chromium on PATH (apt-get install -y chromium)")
    page = write_report(make_demo_run(tmp_path / "run"), n_boot=100).index
    shot = tmp_path / f"shot-{width}.png"
    subprocess.run(
        [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--screenshot={shot}", f"--window-size={width},2000", page.as_uri(),
        ],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (2000, width)
    rows = pixels[..., :3].mean(axis=(1, 2))
    assert (rows < 0.97).mean() > 0.2, "most of the page should carry text or figures"
    # Nothing sticks out to the right: the last columns are the page's white margin.
    assert pixels[:, -3:, :3].min() > 0.9


def test_an_experiments_contrasts_reach_the_report_through_the_run_record(tmp_path, capsys) -> None:
    from emkit.cli import main
    from emkit.probe_groups import run_contrasts

    path = tmp_path / "exp.yaml"
    path.write_text(
        f"name: x\nout: {tmp_path / 'run'}\nsamples_per_paraphrase: 1\nmax_new_tokens: 4\n"
        "analysis:\n  contrasts: [[a, b]]\n"
        "groups:\n  - {name: a, model: mock/a}\n  - {name: b, model: mock/b}\n"
    )
    assert main(["run", str(path)]) == 0
    with RunStore(tmp_path / "run") as store:
        assert run_contrasts(store) == [("a", "b")]
    assert "report: " in capsys.readouterr().out


def test_a_one_model_groups_numbers_are_the_per_model_tables_own(tmp_path) -> None:
    data = json.loads(write_report(make_demo_run(tmp_path / "run"), n_boot=200).metrics_path.read_text())
    findings = data["sections"]["findings"]["findings"]
    models = data["sections"]["probe"]["probe"]["models"]
    for pset in {m["probe_set"] for m in models}:
        base = next(m for m in models if m["model"] == BASE and m["probe_set"] == pset)
        row = next(f for f in findings if f["group"] == "base" and f["probe_set"] == pset)
        assert (row["estimate"], row["ci_low"], row["ci_high"]) == (
            base["score"],
            base["ci_low"],
            base["ci_high"],
        )
