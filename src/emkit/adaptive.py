"""Adaptive sampling: sample and judge a group in rounds until its interval is narrow enough.

Why: a fixed design (the paper's 100 samples per paraphrase) pays for every answer even when the
rate is already clear after twenty. ``--target-ci W`` (``target_ci:``) runs the sample stage's
own code (:func:`emkit.stages.sample.sample_with`) and the judging stage's
(:func:`emkit.judge.stage.run_judging`) for one round at a time, then asks the stopping rule of
:mod:`emkit.stats.sequential` whether the group's misaligned-rate interval has half-width at most
W (or every question's at most the per-question target, or the cap is reached).

Everything is stored as usual: answer keys hold the sample index, so a round adds only the next
indices, and a killed or repeated run replays the looks from the store (nothing is asked again)
and continues where the rounds stopped. A look reads only the answers with a sample index below
its size, so the decisions do not depend on when the run was interrupted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from emkit.adaptive_spec import NEEDS_JUDGE
from emkit.answer_status import DEFAULT_THRESHOLDS, Thresholds, classify, group_cells
from emkit.stats.sequential import Decision, StopRule, decide, earliest_sizes

__all__ = ["NEEDS_JUDGE", "AdaptiveSummary", "GroupResult", "look_counts", "sample_group"]

if TYPE_CHECKING:
    from rich.console import Console

    from emkit.engines.base import Engine
    from emkit.judge.stage import EngineFactory, JudgeConfig
    from emkit.stages.sample import SampleJob
    from emkit.store import RunStore


@dataclass
class GroupResult:
    """What adaptive sampling did for one group: where it stopped and what that saved.

    ``samples``: samples per paraphrase at the stop (per question with a per-question target);
    ``answers`` / ``fixed_answers``: answers used / the fixed design's; ``judge_calls`` /
    ``fixed_judge_calls`` likewise; ``saved_usd``: the measured cost per answer of this group's
    sampling and judging times the answers not made (None when a price is unknown)."""

    group: str
    decision: Decision
    looks: int
    samples: dict[str, int]
    answers: int = 0
    fixed_answers: int = 0
    judge_calls: int = 0
    fixed_judge_calls: int = 0
    saved_usd: float | None = 0.0
    rate: float = float("nan")

    @property
    def saved_answers(self) -> int:
        return self.fixed_answers - self.answers

    @property
    def saved_calls(self) -> int:
        """Requests not made: one per answer not sampled plus its judge calls."""
        return self.saved_answers + (self.fixed_judge_calls - self.judge_calls)


@dataclass
class AdaptiveSummary:
    rule: StopRule
    groups: list[GroupResult] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One line per group and a total: what the target saved against the fixed design."""
        out = []
        for g in self.groups:
            d = g.decision
            why = {"target": f"half-width {d.half_width:.3f} <= {self.rule.half_width:g}"}.get(
                d.reason, d.reason
            )
            n = sorted(set(g.samples.values()))
            samples = str(n[0]) if len(n) == 1 else f"{n[0]}-{n[-1]}"
            money = "" if g.saved_usd is None else f", ${g.saved_usd:.4f} saved"
            if g.saved_usd is None:
                money = ", $ saved unknown (no price for a model)"
            out.append(
                f"{g.group}: stopped after {g.looks} looks at {samples} samples per paraphrase ({why}); "
                f"{g.answers}/{g.fixed_answers} answers, {g.judge_calls}/{g.fixed_judge_calls} judge "
                f"calls; {g.saved_calls} calls not made{money}"
            )
        calls = sum(g.saved_calls for g in self.groups)
        fixed = sum(g.fixed_answers + g.fixed_judge_calls for g in self.groups)
        usd = [g.saved_usd for g in self.groups]
        money = "" if any(u is None for u in usd) else f", ${sum(u for u in usd if u is not None):.4f}"
        if fixed:
            out.append(f"adaptive sampling saved {calls} of {fixed} calls ({calls / fixed:.0%}){money}")
        return out


def look_counts(
    store: RunStore,
    judge: str | None,
    models: Sequence[str],
    questions: Sequence[str],
    upto: dict[str, int],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    kind: str = "question_mean",
) -> tuple[np.ndarray, np.ndarray, float]:
    """(n, k, rate) of the group's (models x questions) at a look: only the answers of ``models``
    to ``questions`` whose sample index is below ``upto[question]``."""
    from emkit.analysis import load_run
    from emkit.stats.rates import estimate

    frame = load_run(store, judge)
    frame = frame[frame["model"].isin(list(models)) & frame["question_id"].isin(list(questions))]
    limit = frame["question_id"].map(upto).fillna(0)
    frame = frame[frame["sample_index"] < limit].assign(group="_")
    classified = classify(frame, thresholds)
    _, n, k = group_cells(classified, "_", list(questions))
    if n.shape[0] == 0:
        n = k = np.zeros((1, len(questions)), dtype=np.int64)
    rate = float(estimate(n[None], k[None], kind)[0][0])
    return n, k, rate


def _costs(
    store: RunStore,
    judge: str | None,
    models: Sequence[str],
    keys: set[str],
    prices: dict[str, tuple[float, float]],
) -> tuple[int, float | None]:
    """(judge calls, measured USD) of the answers ``keys``: their sampling and judging usage
    (``judge`` None: every judge's scores of them)."""
    from emkit.judge.cost import estimate_cost

    calls, usd = 0, 0.0
    known = True
    for model in models:
        used = [a for a in store.answers(model) if a["key"] in keys]
        tokens = _usage(a.get("usage") for a in used)
        cost = estimate_cost(model, tokens, prices)
        known, usd = known and cost is not None, usd + (cost or 0.0)
    scores = [s for s in store.scores(judge) if s["answer_key"] in keys]
    calls = len(scores)
    for name in sorted({s["judge"] for s in scores}):
        tokens = _usage(s.get("usage") for s in scores if s["judge"] == name)
        cost = estimate_cost(name, tokens, prices)
        known, usd = known and cost is not None, usd + (cost or 0.0)
    return calls, usd if known else None


def _usage(rows: Any) -> dict[str, int]:
    total = {"prompt_tokens": 0, "completion_tokens": 0}
    for usage in rows:
        for name in total:
            value = (usage or {}).get(name)
            total[name] += value if isinstance(value, int) else 0
    return total


def sample_group(
    store: RunStore,
    group: str,
    jobs: Sequence[SampleJob],
    rule: StopRule,
    config: JudgeConfig,
    *,
    engine_for: Callable[[SampleJob], Engine],
    make_engine: EngineFactory | None = None,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    progress: bool = False,
    console: Console | None = None,
    reload: bool = False,
) -> GroupResult:
    """Rounds of sampling and judging for one group (its models' sample jobs) until ``rule`` stops
    it; returns where it stopped and what that saved. Engines from ``engine_for`` are closed here;
    ``reload``: each is opened for a round and closed after it (one local model in memory)."""
    from emkit.judge.cost import load_prices
    from emkit.judge.stage import run_judging
    from emkit.stages.sample import sample_with

    questions = [q.id for q in jobs[0].qset]
    engines = _Engines(engine_for, reload)
    active = dict.fromkeys(questions, True)
    upto = dict.fromkeys(questions, 0)
    decision, looks, earliest, q_earliest = None, 0, 0, None
    try:
        for size in rule.looks():
            looks += 1
            for q in questions:
                upto[q] = size if active[q] else upto[q]
            for index, job in enumerate(jobs):
                subset = [q for q in job.qset if active[q.id]]
                qset = replace(job.qset, questions=subset)
                engine = engines.open(index, job)
                sample_with(replace(job, n=size, qset=qset, limit=None), store, engine, progress=progress)
                engines.done(index)
            names = [engines.names[i] for i in range(len(jobs))]
            config = replace(config, models=names, limit=None)
            wanted = _look_keys(jobs, names, engines.fingerprints, upto)
            run_judging(store, config, make_engine=_reuse(make_engine, config, engines.live()),
                        progress=progress, keep_open=engines.live(), source=_only(wanted))  # fmt: skip
            n, k, _ = look_counts(store, config.judge, names, questions, upto, thresholds, rule.kind)
            if looks == 1:  # the pilot names the earliest look a stop may come at
                earliest, q_earliest = earliest_sizes(n, k, rule)
            decision = decide(n, k, rule, size, earliest, q_earliest)
            if console is not None:
                wait = f", no stop before {earliest} (pilot)" if size < earliest else ""
                verdict = f" -> stop ({decision.reason})" if decision.stop else ""
                console.print(
                    f"adaptive {group}: look {looks} at {size} samples per paraphrase, "
                    f"half-width {decision.half_width:.3f}{wait}{verdict}",
                    markup=False,
                )
            if decision.stop:
                break
            for q, done in zip(questions, decision.questions_done, strict=True):
                active[q] = active[q] and not done
    finally:
        engines.close()
    assert decision is not None  # rule.looks() is never empty
    n, k, rate = look_counts(store, config.judge, names, questions, upto, thresholds, rule.kind)
    result = GroupResult(group, decision, looks, dict(upto), rate=rate)
    prices, _ = load_prices(config.prices_file)
    used = _look_keys(jobs, names, engines.fingerprints, upto)
    result.fixed_answers = len(_look_keys(jobs, names, engines.fingerprints, None))
    stored = store.existing_answer_keys(used)
    result.answers = len(stored)
    result.judge_calls, usd = _costs(store, config.judge, names, stored, prices)
    per_answer = result.judge_calls / result.answers if result.answers else 0.0
    result.fixed_judge_calls = result.judge_calls + round(per_answer * result.saved_answers)
    if usd is None:
        result.saved_usd = None
    else:
        result.saved_usd = usd / result.answers * result.saved_answers if result.answers else 0.0
    return result


def _look_keys(
    jobs: Sequence[SampleJob],
    names: Sequence[str],
    fingerprints: dict[int, str],
    upto: dict[str, int] | None,
) -> set[str]:
    """The answer keys of the group's answers below each question's look size (``upto``; None:
    the fixed design's, each job's own ``n``), as the sampling stage keys them."""
    from emkit.sampling import plan as plan_items

    keys: set[str] = set()
    for index, (job, name) in enumerate(zip(jobs, names, strict=True)):
        items = plan_items(
            name, job.qset, n=job.n if upto is None else max(upto.values()), temperature=job.temperature,
            top_p=job.top_p, max_new_tokens=job.max_new_tokens, seed=job.seed, prefix=job.trigger,
            tags=job.tags or None, context=job.context, fingerprint=fingerprints[index],
        )  # fmt: skip
        keys |= {i.key for i in items if upto is None or i.sample_index < upto[i.question.id]}
    return keys


def _only(keys: set[str]) -> Any:
    """A judging source: the stored answers' judgements, only for the answers ``keys`` (a look
    judges its own answers, never ones a store holds beyond it)."""
    from emkit.judge.stage import JudgeSource, plan_questions

    def plan(store: RunStore, config: JudgeConfig) -> Any:
        full = plan_questions(store, config)
        return replace(full, tasks=[t for t in full.tasks if t.answer_key in keys])

    return JudgeSource(plan)


class _Engines:
    """The group's sampling engines: kept open for the whole run, or (``reload``) opened for each
    round and closed after it, so a group of several local models holds one in memory at a time.
    Each model's name and fingerprint are read when it is first opened."""

    def __init__(self, engine_for: Callable[[SampleJob], Engine], reload: bool) -> None:
        self.engine_for = engine_for
        self.reload = reload
        self.open_now: dict[int, Engine] = {}
        self.names: dict[int, str] = {}
        self.fingerprints: dict[int, str] = {}

    def open(self, index: int, job: SampleJob) -> Engine:
        from emkit.fingerprint import engine_fingerprint

        if index not in self.open_now:
            engine = self.engine_for(job)
            self.open_now[index] = engine
            self.names.setdefault(index, engine.name)
            self.fingerprints.setdefault(index, engine_fingerprint(engine))
        return self.open_now[index]

    def done(self, index: int) -> None:
        if self.reload:
            self.open_now.pop(index).close()

    def live(self) -> tuple[Engine, ...]:
        return tuple(self.open_now.values())

    def close(self) -> None:
        while self.open_now:
            self.open_now.popitem()[1].close()


def _reuse(
    make_engine: EngineFactory | None, config: JudgeConfig, engines: Sequence[Engine]
) -> EngineFactory:
    """The judge's engine factory, handing back a sampling engine that also judges (a local model
    judging its own answers is loaded once)."""
    from emkit.engines.registry import backend
    from emkit.judge.stage import engine_factory
    from emkit.models import parse_model

    default = make_engine or engine_factory(config)
    by_name = {e.name: e for e in engines if backend(parse_model(e.name).scheme).local}

    def make(judge: str, method: str) -> Any:
        return by_name.get(judge) or default(judge, method)

    return make
