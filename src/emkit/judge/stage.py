"""The judging stage: score every stored answer that this judge + prompt + method has not scored yet.

Why this shape: judging is the expensive, rate-limited step, so it must be resumable and never pay
twice. Each judgement has a key (answer, metric, judge, method, prompt hash, and the judge's
score-shaping options: :meth:`~emkit.judge.base.JudgeBase.key_options`); keys already in the store are
skipped before any request is made, and results are written in small transactions as they arrive
(:mod:`emkit.judge.score_writer`: at most ~50 ms of replies wait; a kill loses those and the
requests in flight, which a rerun asks for again; ``ON CONFLICT DO NOTHING`` means a result can
never be stored twice). An API judge takes its claimed tasks as one lazy stream, so its connections
stay busy across claim chunks.

Two processes on one store: pending judgements are CLAIMED in chunks before any request
(:meth:`emkit.store.RunStore.claim`: a lease per key in one IMMEDIATE transaction), so the other
process skips them; a lease is renewed while results arrive, released at the end, and taken over
once it expires or its process is gone (a killed judge). A process that finds items leased by a live
other waits for them, so when it ends everything planned is stored.

Cost: each group's cost is computed once, from the tokens THIS process paid for; the table and the
total line both print that number. Each run's usage and cost are kept as a ``judge_run`` record.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from emkit.claims import LEASE_S, Lease, run_claimed
from emkit.engines.batch_files import MAX_REQUESTS
from emkit.engines.batch_session import attach
from emkit.engines.registry import backend
from emkit.errors import EmkitError
from emkit.fingerprint import engine_fingerprint, model_fingerprint
from emkit.hashing import stable_hash
from emkit.judge.base import Judge, Judgement, StreamsJudgements, add_usage
from emkit.judge.cost import load_prices
from emkit.judge.prompts import CATEGORY_METHOD, JudgeTask, Plan, plan_tasks, questions_from_records
from emkit.judge.registry import judge_entry, make_judge
from emkit.judge.sampled import DEFAULT_MAX_TOKENS, DEFAULT_SAMPLES
from emkit.judge.score_writer import ScoreWriter
from emkit.judge.summary import GroupSummary, JudgeRunSummary
from emkit.models import ModelSpec, parse_model
from emkit.store import RunStore, default_owner
from emkit.store_records import JUDGE_RUN_KIND as RUN_RECORD

EngineFactory = Callable[[str, str], Any]  # (judge model name, registered judge) -> engine


@dataclass
class JudgeConfig:
    """Everything that decides how answers are judged (``None``: the question's own, or defaults)."""

    judge: str | None = None
    method: str | None = None
    prompts: Mapping[str, str] | None = None
    prompts_source: str | None = None
    models: Sequence[str] | None = None  # only judge answers of these models
    limit: int | None = None  # at most this many answers get new judgements
    min_mass: float = 0.25
    samples: int = DEFAULT_SAMPLES  # sampled judge: replies per judgement
    sample_max_tokens: int = DEFAULT_MAX_TOKENS
    # engine options
    concurrency: int = 16
    base_url: str | None = None
    api_key_env: str | None = None
    timeout: float | None = None
    max_retries: int | None = None
    batch_size: int = 16
    device: str | None = None
    dtype: str | None = None
    prices_file: str | None = None
    batch: bool = False  # the Batch API (half price; how a score was obtained is in its usage, not its key)
    batch_poll_s: float = 30.0
    batch_timeout_s: float | None = None

    def __post_init__(self) -> None:
        """Refuse values that do nothing or make every score meaningless, naming the option."""
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise EmkitError(f"{_option(item.name)} must be a finite number (got {value})")
        if not 0.0 <= float(self.min_mass) <= 1.0:
            raise EmkitError(f"--min-mass must be between 0 and 1 (got {self.min_mass:g})")
        for name in ("samples", "sample_max_tokens", "concurrency", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise EmkitError(f"{_option(name)} must be at least 1 (got {getattr(self, name)})")
        if self.limit is not None and self.limit < 0:
            raise EmkitError(f"--limit must be >= 0 (got {self.limit})")
        if self.max_retries is not None and self.max_retries < 0:
            raise EmkitError(f"--max-retries must be >= 0 (got {self.max_retries})")
        if self.timeout is not None and self.timeout <= 0:
            raise EmkitError(f"--timeout must be positive (got {self.timeout:g})")
        for name in ("batch_poll_s", "batch_timeout_s"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise EmkitError(f"{_option(name)} must be positive (got {getattr(self, name):g})")


def _option(name: str) -> str:
    """The command-line spelling of a config field (``sample_max_tokens`` -> ``--sample-max-tokens``)."""
    named = {"samples": "--samples", "prices_file": "--prices", "batch_poll_s": "--batch-poll"}
    return named.get(name, "--" + name.replace("_", "-").removesuffix("-s"))


def engine_factory(config: JudgeConfig) -> EngineFactory:
    """Builds each judge's engine from the config (only the options its backend takes).

    ``method`` is the registry name of the judge the engine serves: one that scores continuations
    on a backend that cannot (vLLM) runs on the backend the registry names for it (transformers).
    """
    from emkit.engines import open_engine

    options = {
        "base_url": config.base_url,
        "concurrency": config.concurrency,
        "api_key_env": config.api_key_env,
        "timeout": config.timeout,
        "max_retries": config.max_retries,
        "batch_size": config.batch_size,
        "device": config.device,
        "dtype": config.dtype,
        **({"batch": True, "batch_poll_s": config.batch_poll_s} if config.batch else {}),
        "batch_timeout_s": config.batch_timeout_s,
    }

    def make(judge: str, method: str) -> Any:
        spec = parse_model(judge)
        exact_scheme = backend(spec.scheme).exact_scheme
        if judge_entry(method).engine == "continuations" and exact_scheme:
            spec = ModelSpec(exact_scheme, spec.name, spec.adapter)
        if config.batch and not backend(spec.scheme).paid:
            raise EmkitError(
                f"--batch: the judge {judge} is a local model; the Batch API serves openai/ judges"
            )
        return open_engine(spec, options, only_accepted=True)

    return make


@dataclass(frozen=True)
class JudgeSource:
    """What a judging run judges: ``plan(store, config)`` lists every judgement called for (reads
    only; the stage drops those already stored), and ``judge_options`` adds, per registered judge,
    options its config does not carry (a plan computes its tasks' key options with the same ones:
    the stage refuses to store under options other than the planned). The default judges the
    stored answers by their questions' prompts; an experiment passes its own (code vulnerability:
    the YES/NO judge and bandit)."""

    plan: Callable[[RunStore, JudgeConfig], Plan]
    judge_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _select(tasks: list[JudgeTask], limit: int | None) -> list[JudgeTask]:
    """The pending tasks of the first ``limit`` answers that have any (all of them without a limit)."""
    if limit is None:
        return tasks
    if limit < 0:
        raise EmkitError(f"--limit must be >= 0 (got {limit})")
    allowed: set[str] = set()
    chosen: list[JudgeTask] = []
    for task in tasks:
        if task.answer_key not in allowed:
            if len(allowed) >= limit:
                continue
            allowed.add(task.answer_key)
        chosen.append(task)
    return chosen


def score_options(judge: str, method: str, config: JudgeConfig, engine: Any = None) -> dict[str, Any]:
    """What goes into a score key besides answer/metric/judge/method/prompt: the judge class's
    score-shaping options and (for judges keyed by their model) the judge model's fingerprint (an
    adapter's content and an explicit dtype: what makes the same judge name another judge).
    ``method`` is the judge's registry name (a 0-100 method's is the method itself)."""
    options = make_judge(method, engine, config).key_options()
    if not judge_entry(method).keyed_by_model:
        return options
    fingerprint = (
        engine_fingerprint(engine) if engine is not None else model_fingerprint(judge, dtype=config.dtype)
    )
    return {**options, "judge_model": fingerprint}


def plan_questions(store: RunStore, config: JudgeConfig) -> Plan:
    """Every 0-100 and category judgement the stored answers call for, by their questions."""
    answers = store.answers()
    if config.models:
        wanted = {parse_model(m).full for m in config.models}
        answers = [a for a in answers if a["model"] in wanted]
    return plan_tasks(
        answers,
        questions_from_records(store.records("question")),
        judge=config.judge,
        method=config.method,
        prompts=config.prompts,
        options=lambda judge, method: score_options(judge, method, config),
    )


QUESTIONS = JudgeSource(plan_questions)


def plan_pending(
    store: RunStore, config: JudgeConfig, source: JudgeSource = QUESTIONS
) -> tuple[list[JudgeTask], int, Plan]:
    """(tasks to run now, how many were already scored, the full plan). Reads only."""
    plan = source.plan(store, config)
    done = store.existing_score_keys(t.key for t in plan.tasks)
    pending = [t for t in plan.tasks if t.key not in done]
    return _select(pending, config.limit), len(done), plan


def run_judging(
    store: RunStore,
    config: JudgeConfig | None = None,
    *,
    make_engine: EngineFactory | None = None,
    progress: bool = True,
    lease_s: float = LEASE_S,
    source: JudgeSource = QUESTIONS,
    keep_open: Sequence[Any] = (),
) -> JudgeRunSummary:
    """Judge what is missing; returns counts, usage and cost. Safe to interrupt and call again,
    and safe to run in several processes on one store at once (see the module docstring).
    ``source``: what to judge (default: the stored answers, by their questions' judge prompts).
    Engines from ``make_engine`` are closed at the end, except the caller's own in ``keep_open``
    (e.g. a model that sampled and now judges its own answers, and is used again after)."""
    config = config or JudgeConfig()
    prices, prices_source = load_prices(config.prices_file)
    pending, already, plan = plan_pending(store, config, source)
    # One group per (judge model, registered judge); a group's summary shows its stored method.
    groups: dict[tuple[str, str], list[JudgeTask]] = {}
    for task in pending:
        groups.setdefault((task.judge, task.entry), []).append(task)
    started = time.time()
    summary = JudgeRunSummary(
        run_id=f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}-{stable_hash([started, len(pending)], 8)}",
        planned=len(plan.tasks),
        already_scored=already,
        pending=len(pending),
        groups=[GroupSummary(judge, tasks[0].method, len(tasks)) for (judge, _), tasks in groups.items()],
        unjudged_answers=plan.unjudged_answers,
        missing_questions=sorted(plan.missing_questions or ()),
        prices_source=prices_source,
    )
    if not pending:
        return summary

    make_engine = make_engine or engine_factory(config)
    # Build every engine first: a missing key or unknown model fails before anything is judged.
    engines = {key: make_engine(*key) if judge_entry(key[1]).engine != "none" else None for key in groups}
    owner = default_owner()
    for engine in engines.values():
        attach(engine, store, lambda: store.renew_claims(owner, lease_s))  # --batch: a chunk per batch

    from emkit.terminal import stage_progress

    writers: list[ScoreWriter] = []
    try:
        with stage_progress(
            "judge", "no score: {task.fields[none]}  cost: {task.fields[cost]}", disable=not progress
        ) as bar:
            for group, (key, tasks) in zip(summary.groups, groups.items(), strict=True):
                judge = make_judge(key[1], engines[key], config, source.judge_options.get(key[1]))
                planned = {k: v for k, v in tasks[0].options.items() if k != "judge_model"}
                label = f"{key[0]} ({group.method})"
                if tasks[0].options and judge.key_options() != planned:  # never store under a wrong key
                    raise EmkitError(f"{label}: the judge's options differ from the planned ones")
                bar_task = bar.add_task(label, total=len(tasks), none=0, cost="-")
                lease = Lease(store, owner, lease_s)

                def on_stored(
                    batch: list[tuple[JudgeTask, Judgement, bool]],
                    _group: GroupSummary = group,
                    _bar_task: Any = bar_task,
                    _lease: Lease = lease,
                ) -> None:
                    for task, judgement, added in batch:
                        if added:
                            _group.scored += 1
                            _group.no_score += judgement.score is None and task.method != CATEGORY_METHOD
                        else:
                            _group.duplicates += 1
                    _group.price(prices)
                    cost = "-" if _group.cost_usd is None else f"${_group.cost_usd:.4f}"
                    bar.update(_bar_task, advance=len(batch), none=_group.no_score, cost=cost)
                    _lease.tick()

                writers.append(writer := ScoreWriter(store, on_stored))

                def on_result(
                    task: JudgeTask,
                    judgement: Judgement,
                    _group: GroupSummary = group,
                    _w: ScoreWriter = writer,
                ) -> None:
                    add_usage(_group.usage, judgement.usage)  # paid for now, whatever happens next
                    _w.add(task, judgement)

                def by_others(count: int, _bar_task: Any = bar_task, _group: GroupSummary = group) -> None:
                    _group.taken_by_others += count
                    bar.update(_bar_task, advance=count)

                def work(
                    batch: list[JudgeTask],
                    _judge: Judge = judge,
                    _on: Any = on_result,
                    _w: ScoreWriter = writer,
                ) -> None:
                    _judge.judge(batch, lambda i, judgement: _on(batch[i], judgement))
                    _w.flush()

                def stream(
                    tasks: Iterator[JudgeTask],
                    at_most: int,
                    _judge: Any = judge,
                    _on: Any = on_result,
                    _w: ScoreWriter = writer,
                ) -> None:
                    _judge.judge_stream(tasks, _on, total=at_most)
                    _w.flush()

                streams = isinstance(judge, StreamsJudgements) and judge.can_stream()
                run_claimed(
                    store, "scores", tasks, lambda t: t.key, work, owner=owner, lease_s=lease_s,
                    chunk=_chunk(config), on_taken=by_others, stream=stream if streams else None,
                )  # fmt: skip
                group.price(prices)
    except BaseException:
        summary.status = "interrupted"
        for writer in writers:  # replies already paid for are kept, if the store can take them
            with contextlib.suppress(Exception):
                writer.flush()
        raise
    finally:
        for engine in engines.values():
            if engine is not None and all(engine is not kept for kept in keep_open):
                engine.close()
        summary.elapsed_s = time.time() - started
        try:
            store.release_claims(owner)
        finally:
            store.put_record(
                RUN_RECORD,
                summary.run_id,
                {**summary.to_record(), "config": _config_record(config), "started": started},
            )
    return summary


def _chunk(config: JudgeConfig) -> int:
    """Claim this many judgements at a time: enough to keep every connection busy, few enough that
    a second process finds work to share."""
    # Each chunk ends with its connections draining (the last calls run with slots empty), so a
    # chunk is 16 rounds of the pool: that tail costs ~3% of the time, not the ~11% of 4 rounds.
    return MAX_REQUESTS if config.batch else max(8, 16 * int(config.concurrency))


def _config_record(config: JudgeConfig) -> dict[str, Any]:
    """The config as stored (prompt templates replaced by their hashes; no secrets are in it)."""
    out = asdict(config)
    if config.prompts:
        from emkit.judge.prompts import prompt_hash

        out["prompts"] = {m: prompt_hash(t) for m, t in config.prompts.items()}
    return out
