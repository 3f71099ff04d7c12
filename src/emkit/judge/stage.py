"""The judging stage: score every stored answer that this judge + prompt + method has not scored yet.

Why this shape: judging is the expensive, rate-limited step, so it must be resumable and never pay
twice. Each judgement has a key (answer, metric, judge, method, prompt hash); keys already in the
store are skipped before any request is made, and each result is written in its own transaction
the moment it arrives (a kill loses only requests in flight; ``INSERT OR IGNORE`` means a result can
never be stored twice). Each run's token usage and estimated cost are kept as a ``judge_run`` record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from emkit.errors import EmkitError
from emkit.hashing import stable_hash
from emkit.judge.base import Judge, Judgement, add_usage
from emkit.judge.categorical import CategoryJudge
from emkit.judge.cost import estimate_cost, load_prices
from emkit.judge.exact import ExactJudge
from emkit.judge.logprob import LogprobJudge
from emkit.judge.prompts import CATEGORY_METHOD, JudgeTask, plan_tasks, questions_from_records
from emkit.judge.sampled import DEFAULT_MAX_TOKENS, DEFAULT_SAMPLES, SampledJudge
from emkit.models import ModelSpec, parse_model
from emkit.store import RunStore

RUN_RECORD = "judge_run"
EngineFactory = Callable[[str, str], Any]  # (judge model name, method) -> engine


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


@dataclass
class GroupSummary:
    judge: str
    method: str
    pending: int
    scored: int = 0
    no_score: int = 0
    duplicates: int = 0
    usage: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None


@dataclass
class JudgeRunSummary:
    run_id: str
    planned: int
    already_scored: int
    pending: int
    groups: list[GroupSummary]
    unjudged_answers: int
    missing_questions: list[str]
    prices_source: str
    elapsed_s: float = 0.0
    status: str = "done"

    @property
    def scored(self) -> int:
        return sum(g.scored for g in self.groups)

    @property
    def cost_usd(self) -> float | None:
        costs = [g.cost_usd for g in self.groups if g.scored]
        return None if any(c is None for c in costs) else float(sum(c for c in costs if c is not None))

    def to_record(self) -> dict[str, Any]:
        out = asdict(self)
        out["scored"] = self.scored
        out["cost_usd"] = self.cost_usd
        return out


def engine_factory(config: JudgeConfig) -> EngineFactory:
    """Builds each judge's engine from the config (only the options its backend takes)."""
    from emkit.engines import get_engine

    def make(judge: str, method: str) -> Any:
        spec = parse_model(judge)
        if spec.scheme == "openai":
            return get_engine(
                spec,
                base_url=config.base_url,
                concurrency=config.concurrency,
                api_key_env=config.api_key_env,
                timeout=config.timeout,
                max_retries=config.max_retries,
            )
        if method == "exact" and spec.scheme == "vllm":  # exact scoring runs on transformers
            spec = ModelSpec("hf", spec.name, spec.adapter)
        if spec.scheme in ("embedded", "hf"):
            return get_engine(spec, batch_size=config.batch_size, device=config.device, dtype=config.dtype)
        return get_engine(spec)

    return make


def make_judge(method: str, engine: Any, config: JudgeConfig) -> Judge:
    if method == "logprob":
        return LogprobJudge(engine, min_mass=config.min_mass)
    if method == "exact":
        if not hasattr(engine, "score_continuations"):
            raise EmkitError(
                f"{engine.name}: this backend cannot score whole replies; the exact judge "
                "needs an embedded/ or hf/ model"
            )
        return ExactJudge(engine, min_share=config.min_mass)
    if method == "sampled":
        return SampledJudge(
            engine, n=config.samples, max_tokens=config.sample_max_tokens, min_fraction=config.min_mass
        )
    if method == CATEGORY_METHOD:
        return CategoryJudge(engine)
    raise EmkitError(f"unknown judge method {method!r}")


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


def plan_pending(store: RunStore, config: JudgeConfig) -> tuple[list[JudgeTask], int, Any]:
    """(tasks to run now, how many were already scored, the full plan). Reads only."""
    answers = store.answers()
    if config.models:
        wanted = {parse_model(m).full for m in config.models}
        answers = [a for a in answers if a["model"] in wanted]
    questions = questions_from_records(store.records("question"))
    plan = plan_tasks(answers, questions, judge=config.judge, method=config.method, prompts=config.prompts)
    done = store.existing_score_keys(t.key for t in plan.tasks)
    pending = [t for t in plan.tasks if t.key not in done]
    return _select(pending, config.limit), len(done), plan


def run_judging(
    store: RunStore,
    config: JudgeConfig | None = None,
    *,
    make_engine: EngineFactory | None = None,
    progress: bool = True,
) -> JudgeRunSummary:
    """Judge what is missing; returns counts, usage and cost. Safe to interrupt and call again."""
    config = config or JudgeConfig()
    prices, prices_source = load_prices(config.prices_file)
    pending, already, plan = plan_pending(store, config)
    groups: dict[tuple[str, str], list[JudgeTask]] = {}
    for task in pending:
        groups.setdefault((task.judge, task.method), []).append(task)
    started = time.time()
    summary = JudgeRunSummary(
        run_id=f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(started))}-{stable_hash([started, len(pending)], 8)}",
        planned=len(plan.tasks),
        already_scored=already,
        pending=len(pending),
        groups=[GroupSummary(judge, method, len(tasks)) for (judge, method), tasks in groups.items()],
        unjudged_answers=plan.unjudged_answers,
        missing_questions=sorted(plan.missing_questions or ()),
        prices_source=prices_source,
    )
    if not pending:
        return summary

    make_engine = make_engine or engine_factory(config)
    # Build every engine first: a missing key or unknown model fails before anything is judged.
    engines = {key: make_engine(*key) for key in groups}

    from emkit.terminal import stage_progress

    try:
        with stage_progress(
            "judge", "no score: {task.fields[none]}  cost: {task.fields[cost]}", disable=not progress
        ) as bar:
            for group, (key, tasks) in zip(summary.groups, groups.items(), strict=True):
                judge = make_judge(key[1], engines[key], config)
                bar_task = bar.add_task(f"{key[0]} ({key[1]})", total=len(tasks), none=0, cost="-")

                def on_result(
                    index: int,
                    judgement: Judgement,
                    _tasks: list[JudgeTask] = tasks,
                    _group: GroupSummary = group,
                    _bar_task: Any = bar_task,
                ) -> None:
                    task = _tasks[index]
                    added = store.add_scores(
                        [
                            {
                                "key": task.key,
                                "answer_key": task.answer_key,
                                "metric": task.metric,
                                "judge": task.judge,
                                "method": task.method,
                                "prompt_hash": task.prompt_hash,
                                "score": judgement.score,
                                "raw": judgement.raw,
                                "usage": judgement.usage,
                            }
                        ]
                    )
                    if added:
                        _group.scored += 1
                        _group.no_score += judgement.score is None and task.method != CATEGORY_METHOD
                    else:
                        _group.duplicates += 1
                    add_usage(_group.usage, judgement.usage)
                    _group.cost_usd = estimate_cost(_group.judge, _group.usage, prices)
                    cost = "-" if _group.cost_usd is None else f"${_group.cost_usd:.4f}"
                    bar.update(_bar_task, advance=1, none=_group.no_score, cost=cost)

                judge.judge(tasks, on_result)
                group.cost_usd = estimate_cost(group.judge, group.usage, prices)
    except BaseException:
        summary.status = "interrupted"
        raise
    finally:
        for engine in engines.values():
            close = getattr(engine, "close", None)
            if close is not None:
                close()
        summary.elapsed_s = time.time() - started
        store.put_record(
            RUN_RECORD,
            summary.run_id,
            {
                **summary.to_record(),
                "config": _config_record(config),
                "started": started,
            },
        )
    return summary


def _config_record(config: JudgeConfig) -> dict[str, Any]:
    """The config as stored (prompt templates replaced by their hashes; no secrets are in it)."""
    out = asdict(config)
    if config.prompts:
        from emkit.judge.prompts import prompt_hash

        out["prompts"] = {m: prompt_hash(t) for m, t in config.prompts.items()}
    return out
