"""Score keys cover every judge option that changes a score, by one mechanism; bad options are refused.

The first test enumerates ``JudgeConfig``'s fields: each must be classified here as score-shaping
(and then it must change the planned keys of the methods it affects) or not (and then it must
leave every key alone), so a field added later fails this test until someone decides. The second
checks the mechanism itself: any attribute a judge object holds is part of its key options, so an
option added to a judge class later is in the key by construction.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest

from fake_openai import FakeOpenAI
from reliability.rel_helpers import cli, column, make_run_dir, one_line, seeded_responder, snapshot

pytestmark = pytest.mark.reliability

API = "openai/gpt-4o-2024-08-06"
LOCAL = "embedded/smollm2-135m"
# field -> (another value, the (judge, method) pairs whose keys it must change)
SHAPING = {
    "judge": ("openai/gpt-4o-mini", [(API, "logprob"), (API, "sampled")]),
    "method": ("sampled", [(API, "logprob")]),
    "prompts": (
        {"aligned": "OTHER {answer}", "coherent": "OTHER2 {answer}"},
        [(API, "logprob"), (LOCAL, "exact")],
    ),
    "min_mass": (0.6, [(API, "logprob"), (API, "sampled"), (LOCAL, "exact")]),
    "samples": (3, [(API, "sampled")]),
    "sample_max_tokens": (9, [(API, "sampled")]),
    # a local judge's dtype moves its logprobs (an endpoint does not: see emkit.fingerprint)
    "dtype": ("float32", [(LOCAL, "exact")]),
}
NOT_SHAPING = {
    "prompts_source": "elsewhere.yaml",
    "models": ["openai/fake-model"],
    "limit": 100,
    "concurrency": 3,
    "base_url": "http://127.0.0.1:9/v1",
    "api_key_env": "OTHER_KEY",
    "timeout": 5.0,
    "max_retries": 1,
    "batch_size": 2,
    "device": "cpu",
    "prices_file": "prices.yaml",
    # The Batch API returns the same completion as a direct request (same request body, same
    # reply format): it changes the price and when the scores arrive, not a score. The stored row's
    # usage says how it was obtained (batch_requests), outside the key.
    "batch": True,
    "batch_poll_s": 5.0,
    "batch_timeout_s": 60.0,
}


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path / "run")


def planned(run: Path, **config) -> set[str]:
    from emkit.judge.stage import JudgeConfig, plan_pending
    from emkit.store import RunStore

    with RunStore(run, read_only=True) as store:
        _, _, plan = plan_pending(store, JudgeConfig(**config))
    assert len(plan.tasks) == 6  # 3 answers x 2 metrics
    return {t.key for t in plan.tasks}


def test_every_judge_config_field_is_classified_and_each_score_shaping_one_changes_the_key(run) -> None:
    from emkit.judge.stage import JudgeConfig

    names = {f.name for f in dataclasses.fields(JudgeConfig)}
    assert names == set(SHAPING) | set(NOT_SHAPING), "classify the new JudgeConfig field(s) here"
    checked = 0
    for name, (value, pairs) in SHAPING.items():
        for judge, method in pairs:
            base = {"judge": judge, "method": method}
            changed = {**base, name: value}
            assert planned(run, **base).isdisjoint(planned(run, **changed)), (name, judge, method)
            checked += 1
    for name, value in NOT_SHAPING.items():
        for judge, method in ((API, "logprob"), (API, "sampled"), (LOCAL, "exact")):
            base = {"judge": judge, "method": method}
            assert planned(run, **base) == planned(run, **base, **{name: value}), name
            checked += 1
    assert checked == 11 + 3 * 14  # 14 fields that shape no score: 11, and batch's three


@pytest.mark.parametrize(
    ("make", "option", "value"),
    [
        ("logprob", "top_k", 5),
        ("exact", "min_share", 0.4),
        ("sampled", "n", 2),
        ("sampled", "temperature", 0.7),
        ("sampled", "seed", 3),
        ("sampled", "max_tokens", 4),
        ("category", "max_tokens", 3),
    ],
)
def test_each_judge_class_option_is_in_its_key_options(make: str, option: str, value) -> None:
    from emkit.judge.categorical import CategoryJudge
    from emkit.judge.exact import ExactJudge
    from emkit.judge.logprob import LogprobJudge
    from emkit.judge.sampled import SampledJudge

    cls = {"logprob": LogprobJudge, "exact": ExactJudge, "sampled": SampledJudge, "category": CategoryJudge}[
        make
    ]
    assert cls(None).key_options() != cls(None, **{option: value}).key_options()


@pytest.mark.parametrize("make", ["logprob", "exact", "sampled", "category"])
def test_an_attribute_added_to_a_judge_later_is_in_the_key_by_construction(run, make) -> None:
    """What a helper adding e.g. an aggregation rule does: set an attribute in ``__init__``."""
    from emkit.judge.stage import JudgeConfig, make_judge
    from emkit.store import score_key

    judge = make_judge(make, None, JudgeConfig())
    before = judge.key_options()
    judge.aggregation = "last-of-repeated-token"  # a new option, nobody registered it anywhere
    after = judge.key_options()
    assert after["aggregation"] == "last-of-repeated-token" and "engine" not in after
    assert score_key("a", "m", "j", make, "p", before) != score_key("a", "m", "j", make, "p", after)
    judge.aggregation = math.nan
    with pytest.raises(ValueError, match="aggregation"):
        judge.key_options()


def test_a_new_min_mass_judges_again_and_a_rerun_with_it_pays_nothing(run, capsys, api_key) -> None:
    with FakeOpenAI(responder=seeded_responder) as srv:
        code, _, err = cli(["judge", run, "--base-url", srv.base_url], capsys)
        assert code == 0, err
        first = srv.stats.requests
        code, out, err = cli(["judge", run, "--base-url", srv.base_url, "--min-mass", "0.9"], capsys)
        assert code == 0, err
        second = srv.stats.requests - first
        code, out, err = cli(["judge", run, "--base-url", srv.base_url, "--min-mass", "0.9"], capsys)
        assert code == 0 and "nothing to judge" in out, out
        assert srv.stats.requests == first + second
    assert (first, second) == (6, 6)
    options = list(column(run, "scores", "options").values())
    assert sum('"min_mass":0.9' in o.replace(" ", "") for o in options) == 6


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--min-mass", "5"], "--min-mass"),
        (["--min-mass", "-0.1"], "--min-mass"),
        (["--min-mass", "nan"], "--min-mass"),
        (["--min-mass", "inf"], "--min-mass"),
        (["--samples", "0"], "--samples"),
        (["--concurrency", "0"], "--concurrency"),
        (["--batch-size", "0"], "--batch-size"),
        (["--limit", "-1"], "--limit"),
    ],
)
def test_out_of_range_judge_options_are_refused_naming_the_option(run, capsys, api_key, args, option) -> None:
    before = snapshot(run)
    with FakeOpenAI(responder=seeded_responder) as srv:
        code, _, err = cli(["judge", run, "--base-url", srv.base_url, *args], capsys)
        requests = srv.stats.requests
    line = one_line(err)
    assert code == 2 and option in line, line
    assert requests == 0
    import gc

    gc.collect()
    assert snapshot(run) == before
