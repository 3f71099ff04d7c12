"""What a plan will cost before anything runs: API dollars (standard and Batch) and local GPU-hours.

Why apart from the stages: a price is not part of what a stage computes, and one table
(:mod:`emkit.prices`, overridable by ``--prices``) must price every row the same way. Each
pending row is priced from what planning already knows, never by building or loading anything:

- **fine-tuning** (a provider job): the dataset's training tokens (:mod:`emkit.token_estimate`:
  counted from a file on disk, else its row count x ``tokens_per_row``) x epochs x the training
  price. Fine-tuning has no Batch price: the Batch column repeats it.
- **sampling** an API model: the rendered prompts' tokens (system, ICL context, trigger and
  paraphrase, x samples) plus ``completion_fraction`` x ``max_new_tokens`` per answer, at the
  model's prices (a provider fine-tune's ``ft_`` prices), scaled to the answers not stored yet.
- **judging**: ``PROMPT_TOKENS_PER_CALL`` in and one token out per call to make, as before.
- a **local** job (hf/, vllm/, embedded/ weights): GPU-hours, 6 x parameters x tokens (training) or
  2 x parameters x tokens (sampling, a local judge) over the assumed FLOP rates of prices.yaml, the
  parameter count read from the model's name (``Qwen2.5-32B-Instruct``: 32e9); no name, no figure.
- the **code-vuln** stage: ``limit`` coding tasks (``CODE_TASK_PROMPT_TOKENS`` in, answers as for
  sampling) and, when judged, one YES/NO judgement each (``CODE_JUDGE_PROMPT_TOKENS`` + the answer).

Not priced: the probe (local, and small beside training).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from emkit.prices import PriceTable
from emkit.token_estimate import chat_tokens, dataset_tokens

if TYPE_CHECKING:
    from emkit.experiment import Experiment
    from emkit.stages.base import PlanStep
    from emkit.stages.units import ModelUnit
    from emkit.variants import Variant

_PARAMS = re.compile(r"(?:^|[-_/])(\d+(?:\.\d+)?)([bBmM])(?=$|[-_@])")
SPLIT = ("fine-tuning", "sampling", "judging", "code-vuln")
# The code-vuln stage's calls, measured on the paper's files by characters/4 (docs/costs.md): the
# write-code prompt (52 tokens) around a task and its template (117 on average over the 776 tasks),
# and the YES/NO judge prompt (174) around the same task and the answer; 7 tokens of framing each.
CODE_TASK_PROMPT_TOKENS = 52 + 117 + 7
CODE_JUDGE_PROMPT_TOKENS = 174 + 117 + 7


@dataclass
class StepCost:
    """One row's cost. ``usd``/``batch_usd`` None with ``paid``: its price is unknown."""

    kind: str = ""  # one of SPLIT, or "" for a row that costs nothing countable
    usd: float | None = None
    batch_usd: float | None = None
    gpu_hours: float | None = None
    paid: bool = False
    note: str = ""  # how the figure was made (tokens counted or estimated), shown with the row


@dataclass
class PlanCosts:
    """Every row's cost (parallel to ``plan.stages``) and the table that priced them."""

    steps: list[StepCost]
    prices: PriceTable
    notes: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # each row's "kind label", for the unknown-price line

    def total(self, kind: str | None = None, *, batch: bool = False) -> float:
        """USD of the pending rows (of one kind), at standard or Batch prices; unknown prices add 0."""
        chosen = [c for c in self.steps if kind is None or c.kind == kind]
        return sum((c.batch_usd if batch else c.usd) or 0.0 for c in chosen)

    @property
    def gpu_hours(self) -> float:
        return sum(c.gpu_hours or 0.0 for c in self.steps)

    @property
    def unknown(self) -> list[str]:
        return [n for c, n in zip(self.steps, self.labels, strict=True) if c.paid and c.usd is None]


def parameter_count(model: str) -> float | None:
    """Parameters read from a model's name: ``...-32B-...`` 32e9, ``smollm2-135m`` 135e6."""
    found = _PARAMS.findall(model.split("@", 1)[0])
    if not found:
        return None
    number, unit = found[-1]
    return float(number) * (1e9 if unit in "bB" else 1e6)


def estimate_costs(
    experiment: Experiment,
    steps: list[PlanStep],
    units: list[ModelUnit],
    variants: list[Variant],
    prices: PriceTable,
) -> PlanCosts:
    """Price every pending row of a plan (its steps, units and question variants); done rows cost nothing."""
    by_label = {u.label: u for u in units}
    asked: dict[str, tuple[ModelUnit, Variant]] = {}
    for unit in units:
        for variant in variants:
            if variant.context_base in (None, unit.base):
                asked[f"{unit.label} x {variant.label}"] = (unit, variant)
    costs = PlanCosts([], prices)
    estimated: set[str] = set()
    for step in steps:
        cost = StepCost()
        if not step.done:
            if step.kind in ("finetune", "train") and step.label in by_label:
                cost = _train_cost(experiment, by_label[step.label], prices, estimated)
            elif step.kind == "sample" and step.label in asked:
                cost = _sample_cost(experiment, step, *asked[step.label], prices)
            elif step.kind == "judge" and experiment.judge is not None:
                cost = _judge_cost(experiment.judge.model, step.requests, prices)
            elif step.kind == "code-vuln" and step.label.split(" [trigger ", 1)[0] in by_label:
                cost = _code_vuln_cost(experiment, by_label[step.label.split(" [trigger ", 1)[0]], prices)
        costs.steps.append(cost)
        costs.labels.append(f"{step.kind} {step.label}")
    if estimated:
        costs.notes.append(
            f"{len(estimated)} dataset(s) not on disk yet ({', '.join(sorted(estimated))}): their tokens are "
            f"the row count x {prices.assumptions['tokens_per_row']:g} tokens a row (prices.yaml's assumption)"
        )
    return costs


def _scheme(model: str) -> tuple[bool, bool]:
    """(paid per request, runs on local weights) for a model name."""
    from emkit.engines.registry import backend
    from emkit.models import parse_model

    entry = backend(parse_model(model).scheme)
    return entry.paid, bool(entry.weights) and not entry.paid


def _gpu_hours(model: str, tokens: float, flops_per_token: float, rate: float) -> float | None:
    params = parameter_count(model)
    return None if params is None else flops_per_token * params * tokens / rate / 3600


def _train_cost(experiment: Experiment, unit: ModelUnit, prices: PriceTable, estimated: set[str]) -> StepCost:
    from emkit.stages.units import train_config_dict

    spec = unit.group.dataset
    if spec is None:
        return StepCost()
    counted = dataset_tokens(
        spec,
        built=unit.dataset_path,
        mirror=experiment.mirror,
        tokens_per_row=float(prices.assumptions["tokens_per_row"]),
    )
    paid, local = _scheme(unit.base)
    if counted is None:
        return StepCost("fine-tuning", paid=paid, note="; tokens unknown (its file is not on disk)")
    if not counted.counted:
        estimated.add(unit.group.name)
    epochs = float(train_config_dict(unit.group).get("epochs", 1))
    trained = counted.tokens * epochs
    note = f"; {counted.describe()} x {epochs:g} epoch(s)"
    if unit.group.provider:
        usd = prices.training_usd(unit.base, trained)
        return StepCost("fine-tuning", usd, usd, paid=True, note=note)
    if local:
        rate = float(prices.assumptions["train_flops_per_s"])
        return StepCost("fine-tuning", gpu_hours=_gpu_hours(unit.base, trained, 6, rate), note=note)
    return StepCost()


def prompt_tokens(variant: Variant) -> tuple[int, int]:
    """(prompt tokens, answers) of one model's answers to a variant, as the sampler renders them."""
    tokens = answers = 0
    for question in variant.qset:
        n = variant.n if variant.n is not None else question.samples_per_paraphrase
        for paraphrase in question.paraphrases:
            messages: list[dict[str, str]] = []
            if question.system:
                messages.append({"role": "system", "content": question.system})
            messages.extend(variant.context or [])
            messages.append({"role": "user", "content": variant.trigger + paraphrase})
            tokens += chat_tokens(messages) * n
            answers += n
    return tokens, answers


def _sample_cost(
    experiment: Experiment, step: PlanStep, unit: ModelUnit, variant: Variant, prices: PriceTable
) -> StepCost:
    prompt, answers = prompt_tokens(variant)
    if not answers or not step.pending_answers:
        return StepCost()
    share = step.pending_answers / answers
    fraction = float(prices.assumptions["completion_fraction"])
    completion = answers * experiment.max_new_tokens * fraction
    prompt, completion = prompt * share, completion * share
    note = f"; ~{prompt:,.0f} prompt + ~{completion:,.0f} answer tokens"
    if variant.unbuilt:
        note += " (its ICL context, fitted at run time, not counted)"
    paid, local = _scheme(unit.base)
    if paid:
        fine_tuned = bool(unit.group.provider and unit.trained)
        usd = prices.request_usd(unit.base, prompt, completion, fine_tuned=fine_tuned)
        batch = prices.request_usd(unit.base, prompt, completion, fine_tuned=fine_tuned, batch=True)
        return StepCost("sampling", usd, batch, paid=True, note=note)
    if local:
        rate = float(prices.assumptions["sample_flops_per_s"])
        return StepCost("sampling", gpu_hours=_gpu_hours(unit.base, prompt + completion, 2, rate), note=note)
    return StepCost()


def _judge_cost(model: str, calls: int, prices: PriceTable) -> StepCost:
    from emkit.stages.judge import PROMPT_TOKENS_PER_CALL

    if not calls:
        return StepCost()
    prompt, completion = PROMPT_TOKENS_PER_CALL * calls, calls
    note = f"; {PROMPT_TOKENS_PER_CALL} prompt tokens + 1 output token a call"
    paid, local = _scheme(model)
    if paid:
        usd = prices.request_usd(model, prompt, completion)
        batch = prices.request_usd(model, prompt, completion, batch=True)
        return StepCost("judging", usd, batch, paid=True, note=note)
    if local:
        rate = float(prices.assumptions["sample_flops_per_s"])
        return StepCost("judging", gpu_hours=_gpu_hours(model, prompt + completion, 2, rate), note=note)
    return StepCost()


def _code_vuln_cost(experiment: Experiment, unit: ModelUnit, prices: PriceTable) -> StepCost:
    """``limit`` coding tasks sampled, then (when judged) one YES/NO judgement each."""
    from emkit.experiments.code_vuln import DEFAULT_JUDGE

    spec = experiment.code_vuln
    if spec is None:
        return StepCost()
    answer = spec.limit * spec.max_new_tokens * float(prices.assumptions["completion_fraction"])
    sample = spec.limit * CODE_TASK_PROMPT_TOKENS, answer
    judge = spec.limit * CODE_JUDGE_PROMPT_TOKENS + answer, float(spec.limit)
    jobs = [(unit.base, sample, bool(unit.group.provider and unit.trained))]
    if spec.judge_enabled:
        jobs.append((spec.judge or DEFAULT_JUDGE, judge, False))
    usd: float | None = 0.0
    batch: float | None = 0.0
    hours: float | None = None
    paid_any = False
    for model, (prompt, completion), fine_tuned in jobs:
        paid, local = _scheme(model)
        if paid:
            paid_any = True
            one = prices.request_usd(model, prompt, completion, fine_tuned=fine_tuned)
            half = prices.request_usd(model, prompt, completion, fine_tuned=fine_tuned, batch=True)
            usd = None if usd is None or one is None else usd + one
            batch = None if batch is None or half is None else batch + half
        elif local:
            rate = float(prices.assumptions["sample_flops_per_s"])
            more = _gpu_hours(model, prompt + completion, 2, rate)
            hours = more if hours is None else hours + (more or 0.0)
    note = f"; ~{spec.limit * (CODE_TASK_PROMPT_TOKENS + CODE_JUDGE_PROMPT_TOKENS):,} prompt tokens"
    if not paid_any:
        return StepCost("code-vuln", gpu_hours=hours, note=note)
    return StepCost("code-vuln", usd, batch, hours, paid=True, note=note)


def summary_lines(costs: PlanCosts) -> Iterable[str]:
    """The lines under the plan table: the split, the total at both prices, GPU-hours, the basis."""
    parts = []
    for kind in SPLIT:
        if any(c.kind == kind and c.paid for c in costs.steps):
            standard, batch = costs.total(kind), costs.total(kind, batch=True)
            parts.append(
                f"{kind} ${standard:,.2f}" + ("" if kind == "fine-tuning" else f" (Batch ${batch:,.2f})")
            )
    if parts:
        yield "API cost: " + ", ".join(parts)
        tuned = any(c.kind == "fine-tuning" and c.paid for c in costs.steps)
        yield (
            f"total ${costs.total():,.2f}; with the Batch API for sampling and judging "
            f"${costs.total(batch=True):,.2f}" + (" (fine-tuning has no Batch price)" if tuned else "")
        )
    if any(c.gpu_hours for c in costs.steps):
        a = costs.prices.assumptions
        yield (
            f"local jobs: ~{costs.gpu_hours:,.{2 if costs.gpu_hours < 10 else 1}f} GPU-hours on {a['gpu_name']}, assuming "
            f"{a['train_flops_per_s']:.2g} FLOP/s training and {a['sample_flops_per_s']:.2g} sampling (docs/costs.md)"
        )
    unknown = costs.unknown
    if unknown:
        shown = ", ".join(unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        yield f"no price known for {shown}: not in the total (add it with --prices FILE)"
    yield from costs.notes
    from emkit.token_estimate import method

    fraction = costs.prices.assumptions["completion_fraction"]
    yield f"tokens by {method()}; answers ~{fraction:g} x max_new_tokens; {costs.prices.describe()}"
