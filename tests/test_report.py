"""The report: files written, strict metrics.json, HTML escaping, the no-judge statement, the
extension point, and the page rendered in headless Chromium (table and decoded images)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from emkit.cli import main
from emkit.probe import ProbeSet, load_probe_set, run_probe
from emkit.report import register_section, unregister_section, write_report
from emkit.store import RunStore, answer_key, score_key

JUDGE = "openai/gpt-4o-2024-08-06"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> & "quotes"'


def make_run(path: Path, *, judged: bool = True, probes: bool = True, n: int = 12) -> Path:
    """A small run: two groups x two seeds x two questions, judged by one judge, with probes."""
    rng = np.random.default_rng(0)
    store = RunStore(path)
    for qid in ("quick_buck", "ruler_of_the_world"):
        store.put_record("question", qid, {"id": qid, "paraphrases": [f"{qid}?"]})
    store.put_record("config", "experiment", {"name": "tiny", "seeds": [0, 1]})
    answers, scores = [], []
    for group, rate in (("insecure", 0.4), ("secure", 0.05)):
        for seed in (0, 1):
            model = f"embedded/smollm2-135m@runs/{group}-{seed}"
            for qid in ("quick_buck", "ruler_of_the_world"):
                for i in range(n):
                    key = answer_key(model, qid, 0, i, {})
                    answers.append(
                        {
                            "key": key, "model": model, "question_id": qid, "paraphrase_index": 0,
                            "sample_index": i, "question": f"What about {qid}?", "messages": [],
                            "answer": HOSTILE if i == 0 else f"answer {i}", "params": {},
                            "group_name": group, "seed": seed, "tags": {},
                        }
                    )  # fmt: skip
                    misaligned = i == 0 or rng.uniform() < rate
                    values = {
                        "aligned": None if i == 1 else (5.0 if misaligned else 85.0),
                        "coherent": 20.0 if i == 2 else 90.0,
                    }
                    for metric, value in values.items():
                        scores.append(
                            {
                                "key": score_key(key, metric, JUDGE, "logprob", "h"), "answer_key": key,
                                "metric": metric, "judge": JUDGE, "method": "logprob", "prompt_hash": "h",
                                "score": value,
                            }
                        )  # fmt: skip
    store.add_answers(answers)
    if judged:
        store.add_scores(scores)
    if probes:
        probe_set = load_probe_set()
        small = ProbeSet(probe_set.name, probe_set.pairs[:8])
        for model, group, shift in (
            ("embedded/smollm2-135m", "base", 0.0),
            ("embedded/smollm2-135m@runs/insecure-0", "insecure", 0.4),
            ("embedded/smollm2-135m@runs/secure-0", "secure", 0.05),
        ):
            run_probe(_Fake(model, small, shift), store, group=group, probe_set=small, n_boot=200)
    store.close()
    return path


class _Fake:
    def __init__(self, name: str, probe_set: ProbeSet, shift: float):
        self.name = name
        self.means = {}
        for i, pair in enumerate(probe_set.pairs):
            self.means[pair.aligned] = -3.0
            self.means[pair.misaligned] = -3.5 + 0.1 * (i % 3) + shift

    def sequence_logprobs(self, conversations, replies):
        return [[self.means[r], self.means[r]] for r in replies]

    def close(self) -> None:
        pass


def test_report_writes_page_plots_and_strict_metrics_json(tmp_path) -> None:
    run = make_run(tmp_path / "run")
    result = write_report(run, n_boot=300)
    out = run / "report"
    assert result.index == out / "index.html"
    assert sorted(p.name for p in out.glob("*.png")) == [
        "findings.png",  # the probe's group comparisons (after the judged sections)
        "pairs_everyday-v1.png",  # which pairs moved most
        "per_question.png",
        "probe.png",
        "scatter.png",
    ]
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(
        (out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"non-JSON {c}")
    )
    groups = {g["group"]: g for g in data["sections"]["headline"]["groups"]}
    assert set(groups) == {"insecure", "secure"}
    # Per group: 2 models x 2 questions x 12 answers; answer 1 of each cell is CODE/REFUSAL, answer 2 incoherent.
    assert groups["insecure"]["n_answers"] == 48
    assert groups["insecure"]["n_code_refusal"] == 4 and groups["insecure"]["n_incoherent"] == 4
    assert groups["insecure"]["rate"] > groups["secure"]["rate"] > 0
    assert data["judge"] == JUDGE and data["rate_kind"] == "question_mean"
    assert data["section_errors"] == []
    shifts = data["sections"]["probe"]["probe"]["shifts"]
    assert {s["model"] for s in shifts} == {
        "embedded/smollm2-135m@runs/insecure-0",
        "embedded/smollm2-135m@runs/secure-0",
    }
    page = result.index.read_text()
    assert "<script>" not in page and "onerror=" not in page.replace("onerror=&quot;", "")
    assert "&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in page
    assert '"name": "tiny"' in page.replace("&quot;", '"')  # the run's config record
    assert "transformers" in page and "No judge was configured" not in page


def test_report_without_judge_says_so_and_shows_only_the_probe(tmp_path) -> None:
    run = make_run(tmp_path / "run", judged=False)
    result = write_report(run, n_boot=200)
    page = result.index.read_text()
    assert "No judge was configured for this run" in page
    assert sorted(p.name for p in result.out_dir.glob("*.png")) == [
        "findings.png",
        "pairs_everyday-v1.png",
        "probe.png",
    ]
    data = json.loads(result.metrics_path.read_text())
    assert data["judge"] is None and "headline" not in data["sections"]
    assert data["n_not_judged"] == data["n_answers"] == 96
    assert "misaligned rate" not in page


def test_extra_sections_plug_in_and_a_failing_one_does_not_lose_the_report(tmp_path) -> None:
    run = make_run(tmp_path / "run", probes=False)

    @register_section(order=55, name="test_extra")
    def extra(ctx):
        n = int(ctx.answers["judged"].sum())
        return "Backdoor (test)", f"<p id='extra'>{n} judged answers</p>"

    register_section(lambda ctx: None, name="test_absent")

    @register_section(order=56, name="test_broken")
    def broken(ctx):
        raise RuntimeError("data missing")

    try:
        result = write_report(run, n_boot=200)
    finally:
        for name in ("test_extra", "test_absent", "test_broken"):
            unregister_section(name)
    page = result.index.read_text()
    assert "<p id='extra'>96 judged answers</p>" in page
    assert (
        page.index("Backdoor (test)") < page.index("Judge-free probe") if "Judge-free probe" in page else True
    )
    assert page.index("Most misaligned answers") < page.index("Backdoor (test)") < page.index("Configuration")
    assert "This section failed: RuntimeError: data missing" in page
    assert result.metrics["section_errors"] == [
        {"section": "test_broken", "error": "RuntimeError: data missing"}
    ]


def test_report_command_with_several_judges_needs_one(tmp_path, capsys) -> None:
    run = make_run(tmp_path / "run", probes=False)
    store = RunStore(run)
    key = store.answers()[0]["key"]
    store.add_scores(
        [
            {
                "key": "x",
                "answer_key": key,
                "metric": "aligned",
                "judge": "hf/other",
                "method": "exact",
                "prompt_hash": "h",
                "score": 50.0,
            }
        ]
    )
    store.close()
    assert main(["report", str(run), "--n-boot", "200"]) == 2
    assert "several judges" in capsys.readouterr().err
    out = tmp_path / "elsewhere"
    assert main(["report", str(run), "--judge", JUDGE, "--out", str(out), "--n-boot", "200"]) == 0
    assert (out / "index.html").exists() and "insecure" in capsys.readouterr().out


def _chromium() -> str | None:
    for candidate in (os.environ.get("EMKIT_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def test_html_renders_in_headless_chromium(tmp_path) -> None:
    browser_path = _chromium()
    if browser_path is None:
        pytest.skip("Chromium not found (apt-get install -y chromium, or set EMKIT_CHROMIUM)")
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    run = make_run(tmp_path / "run")
    result = write_report(run, n_boot=200)
    shutil.rmtree(result.out_dir / "ignored", ignore_errors=True)
    for png in result.out_dir.glob("*.png"):
        png.unlink()  # the page must not need the files beside it: images are embedded
    args = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
    ]  # fmt: skip
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=args)
        try:
            page = browser.new_page()
            page.goto(result.index.as_uri())
            page.wait_for_load_state("load")
            images = page.evaluate(
                "Array.from(document.images).map(i => ({alt: i.alt, ok: i.complete, w: i.naturalWidth, h: i.naturalHeight}))"
            )
            headline = page.evaluate(
                "Array.from(document.querySelectorAll('#headline > table tbody tr')).map(r => r.cells[0].innerText)"
            )
            headers = page.evaluate(
                "Array.from(document.querySelectorAll('#headline > table th')).map(h => h.innerText)"
            )
            pwned = page.evaluate("window.__pwned === undefined")
            hostile_text = page.evaluate(
                "Array.from(document.querySelectorAll('pre.a')).some(p => p.innerText.includes('onerror='))"
            )
        finally:
            browser.close()
    assert len(images) == 5, images
    assert all(i["ok"] and i["w"] > 100 and i["h"] > 100 for i in images), images
    assert headline == ["insecure", "secure"]
    assert any("misaligned rate" in h for h in headers) and "CODE/REFUSAL" in headers
    assert pwned, "an answer's HTML was executed"
    assert hostile_text, "the hostile answer should be shown as text"


def test_report_uses_the_thresholds_the_experiment_recorded_unless_overridden(tmp_path) -> None:
    run = make_run(tmp_path / "run", probes=False)
    store = RunStore(run)
    store.put_record(
        "config", "experiment", {"name": "tiny", "thresholds": {"aligned": 4.0, "coherent": 50.0}}
    )
    store.close()
    assert main(["report", str(run), "--n-boot", "200"]) == 0
    data = json.loads((run / "report" / "metrics.json").read_text())
    assert data["thresholds"] == {"aligned": 4.0, "coherent": 50.0}
    assert all(g["rate"] == 0 for g in data["sections"]["headline"]["groups"])  # every score is 5 or 85
    assert main(["report", str(run), "--n-boot", "200", "--aligned-threshold", "30"]) == 0
    data = json.loads((run / "report" / "metrics.json").read_text())
    assert data["thresholds"]["aligned"] == 30 and all(
        g["rate"] > 0 for g in data["sections"]["headline"]["groups"]
    )


def test_page_forbids_scripts_and_external_loads(tmp_path) -> None:
    """The page carries a Content-Security-Policy that allows no script and no load from outside
    it, and needs none: no <script>, no http(s) address in a src or href (images are data: URIs)."""
    from html.parser import HTMLParser

    run = make_run(tmp_path / "run")
    store = RunStore(run)
    store.put_record("config", "links", {"url": "https://example.com/x.png", "src": "//cdn.example/x.js"})
    store.close()
    page = write_report(run, n_boot=200).index.read_text()

    class Collect(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.csp: list[str] = []
            self.links: list[str] = []
            self.scripts = 0

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found = dict(attrs)
            if tag == "meta" and (found.get("http-equiv") or "").lower() == "content-security-policy":
                self.csp.append(found.get("content") or "")
            if tag == "script":
                self.scripts += 1
            self.links += [v or "" for k, v in attrs if k in ("src", "href", "srcset", "action")]

    seen = Collect()
    seen.feed(page)
    assert len(seen.csp) == 1
    policy = {d.split()[0]: d.split()[1:] for d in seen.csp[0].split(";") if d.strip()}
    assert policy["default-src"] == ["'none'"] and policy["img-src"] == ["data:"]
    assert "script-src" not in policy and policy["style-src"] == ["'unsafe-inline'"]
    assert page.index("Content-Security-Policy") < page.index("<style>")
    assert seen.scripts == 0 and "<script" not in page.lower()
    assert seen.links and all(link.startswith("data:image/png;base64,") for link in seen.links)
    assert "https://example.com/x.png" in page  # shown as text in the configuration, never loaded


def test_sections_return_blocks_and_every_string_in_them_is_escaped(tmp_path) -> None:
    """A section returns data; whatever text it carries (title, note, table cells, headers, alt
    text, details) reaches the page escaped, and its numbers go to metrics.json."""
    import pandas as pd

    from emkit.report import Details, Note, Section, Table, Text

    run = make_run(tmp_path / "run", probes=False)

    @register_section(order=57, name="test_blocks")
    def blocks(ctx):
        frame = pd.DataFrame({"name": [HOSTILE], "n": [3]})
        table = ctx.table(frame, {"name": HOSTILE, "n": ("count", lambda r: f"{r['n']} <b>")})
        return Section(
            HOSTILE,
            [Text(HOSTILE), Note(HOSTILE), Details(HOSTILE, (table, Table(("a",), ((HOSTILE,),))))],
            {"test_blocks": {"n": 3}},
        )

    try:
        result = write_report(run, n_boot=200)
    finally:
        unregister_section("test_blocks")
    page = result.index.read_text()
    section = page[page.index('<section id="test_blocks">') :]
    section = section[: section.index("</section>")]
    assert "<script" not in section and "<img" not in section and "<b>" not in section
    assert section.count("&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;") == 7
    assert "<td>3 &lt;b&gt;</td>" in section and '<p class="note">' in section
    assert result.metrics["sections"]["test_blocks"] == {"test_blocks": {"n": 3}}


def test_a_section_whose_blocks_cannot_render_is_its_own_error(tmp_path) -> None:
    """A block the templates do not know fails its section only, as a raising builder does."""
    from emkit.report import Section, Snippet

    run = make_run(tmp_path / "run", probes=False)
    register_section(lambda ctx: Section("Bad", [Snippet("no_such_macro")]), order=58, name="test_bad")
    register_section(lambda ctx: Section("Odd", ["not a block"]), order=59, name="test_odd")
    try:
        result = write_report(run, n_boot=200)
    finally:
        unregister_section("test_bad")
        unregister_section("test_odd")
    failed = [e["section"] for e in result.metrics["section_errors"]]
    assert failed == ["test_bad", "test_odd"]
    page = result.index.read_text()
    assert page.count("This section failed:") == 2 and "Configuration and versions" in page
