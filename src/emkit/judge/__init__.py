"""Judges: turn stored answers into scores (``aligned``, ``coherent``, ... 0-100), categories, or
code-vulnerability verdicts.

- :mod:`~emkit.judge.registry`: every judge by name (its class, family, stored method and what it
  needs from its engine); a new judge is one module here plus one registration line there.
- :mod:`~emkit.judge.aggregate`: the paper's top-logprob aggregation, and its exact-string twin.
- :mod:`~emkit.judge.prompts`: which judge model, method and prompt judge each answer.
- :mod:`~emkit.judge.logprob` (the paper's API judge), :mod:`~emkit.judge.exact` (local models,
  whole-number probabilities), :mod:`~emkit.judge.sampled` (APIs without logprobs),
  :mod:`~emkit.judge.categorical` (``free_form_judge`` questions),
  :mod:`~emkit.judge.vulnerability` (the YES/NO "is this code vulnerable?" judge) and
  :mod:`~emkit.judge.bandit` (a static check, no model).
- :mod:`~emkit.judge.stage`: the resumable judging stage over a run store, for any registered
  judge and any source of tasks (the stored questions' prompts by default); :mod:`~emkit.judge.cost`.
- :mod:`~emkit.judge.agreement`: correlation and kappa against a reference judge's CSV.
"""

from __future__ import annotations

from emkit.judge.aggregate import aggregate_0_100, logprobs_to_probs, parse_score_token
from emkit.judge.prompts import DEFAULT_JUDGE, JudgeTask, load_judge_prompts, plan_tasks
from emkit.judge.stage import JudgeConfig, JudgeRunSummary, run_judging

__all__ = [
    "DEFAULT_JUDGE",
    "JudgeConfig",
    "JudgeRunSummary",
    "JudgeTask",
    "aggregate_0_100",
    "load_judge_prompts",
    "logprobs_to_probs",
    "parse_score_token",
    "plan_tasks",
    "run_judging",
]
