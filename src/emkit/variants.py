"""The ways a question set is asked: plain, after a trigger, through an evil-numbers wrapper, after ICL.

Split from planning so that each stays short, and shared with ``emkit sample``: the CLI's
``--wrapper`` and ``--icl`` build their question set and context with :func:`wrapped` and
:func:`fit_context`, the same functions the experiment file's ``wrappers:`` and ``icl:`` use. With
``build=False`` (a dry run) an ICL variant is planned from its spec only: fitting its context would
load the base model's tokenizer and config, which a dry run never does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emkit.errors import EmkitError
from emkit.experiment import Experiment
from emkit.experiments.evil_numbers import WrappersSpec
from emkit.questions import QuestionSet
from emkit.sampling import plan as plan_answers

if TYPE_CHECKING:
    from emkit.experiments.icl import IclContext
    from emkit.stages.units import ModelUnit

# A plan past this many answers would take gigabytes just to list; no study needs it at once.
MAX_PLANNED_ANSWERS = 5_000_000


@dataclass
class Variant:
    """One way of asking a question set: with a trigger, through a wrapper, after ICL examples..."""

    label: str
    qset: QuestionSet
    n: int | None
    trigger: str = ""
    tags: dict[str, Any] = field(default_factory=dict)
    context: list[dict[str, str]] | None = None
    context_base: str | None = None  # ICL contexts are fitted to one base model's tokenizer
    unbuilt: bool = False  # an ICL context not fitted yet (dry run): its answers cannot be looked up


def wrapped(
    qset: QuestionSet, name: str, spec: WrappersSpec, *, mirror: Any
) -> tuple[QuestionSet, dict[str, Any]]:
    """The set asked through one evil-numbers wrapper, and the tags its answers carry."""
    from emkit.experiments.evil_numbers import wrap_question_set, wrapper_tags

    wrapped_set = wrap_question_set(
        qset, name, wrappers_file=spec.file, mirror=mirror, n=spec.n, seed=spec.seed, select=spec.select
    )
    return wrapped_set, wrapper_tags(name, spec.seed)


def fit_context(
    dataset: str,
    model: str,
    k: int,
    qset: QuestionSet,
    *,
    seed: int,
    mirror: Any,
    reserve_tokens: int,
    max_context_tokens: int | None = None,
) -> IclContext:
    """The k-shot context for one model, fitted to its context window when its weights load here."""
    from emkit.experiments.icl import load_context, model_context_window

    tokenizer, window = model_context_window(model, max_context_tokens)
    return load_context(
        dataset,
        k,
        seed=seed,
        mirror=mirror,
        tokenizer=tokenizer,
        max_context_tokens=window,
        questions=list(qset),
        reserve_tokens=reserve_tokens,
    )


def build_variants(
    exp: Experiment, qsets: list[QuestionSet], bases: list[str], *, build: bool = True
) -> list[Variant]:
    """Question sets x triggers, plus evil-numbers wrappers and ICL contexts when the file asks."""
    variants: list[Variant] = []
    for qset in qsets:
        for trigger in exp.triggers:
            tags = {"trigger": trigger} if trigger else {}
            suffix = f" [trigger {trigger.strip()}]" if trigger else ""
            variants.append(
                Variant(qset.name + suffix, qset, exp.samples_per_paraphrase, trigger, dict(tags))
            )
            if exp.wrappers:
                for name in exp.wrappers.names:
                    wrapped_set, extra = wrapped(qset, name, exp.wrappers, mirror=exp.mirror)
                    label = f"{qset.name}/{name}{suffix}"
                    variants.append(Variant(label, wrapped_set, None, trigger, {**tags, **extra}))
            if exp.icl:
                variants.extend(_icl_variants(exp, qset, bases, trigger, tags, suffix, build))
    return variants


def _icl_variants(
    exp: Experiment,
    qset: QuestionSet,
    bases: list[str],
    trigger: str,
    tags: dict[str, Any],
    suffix: str,
    build: bool,
) -> list[Variant]:
    icl = exp.icl
    assert icl is not None
    out: list[Variant] = []
    for base in bases:
        for k in icl.k:
            n = exp.samples_per_paraphrase
            if not build:
                label = f"{qset.name}/icl{k}{suffix}"
                out.append(Variant(label, qset, n, trigger, dict(tags), context_base=base, unbuilt=True))
                continue
            context = fit_context(
                icl.dataset,
                base,
                k,
                qset,
                seed=icl.seed,
                mirror=exp.mirror,
                reserve_tokens=icl.reserve_tokens,
                max_context_tokens=icl.max_context_tokens,
            )
            label = f"{qset.name}/icl{context.k_used}{suffix}"
            merged = {**tags, **context.tags()}
            out.append(Variant(label, qset, n, trigger, merged, context.messages, base))
    return out


def variant_items(exp: Experiment, unit: ModelUnit, variant: Variant, run_dir: Path) -> list[Any]:
    """The answers a variant asks of one model; keys carry the model's fingerprint (its adapter's
    content, resolved relative to the run dir), the same one the sampling engine reports."""
    return plan_answers(
        unit.name,
        variant.qset,
        n=variant.n,
        temperature=exp.temperature,
        max_new_tokens=exp.max_new_tokens,
        seed=unit.seed or 0,
        prefix=variant.trigger,
        tags=variant.tags or None,
        context=variant.context,
        fingerprint=unit.fingerprint(run_dir),
    )


def count_answers(variant: Variant) -> int:
    """How many answers a variant asks of one model, counted without making the items."""
    return sum(
        len(q.paraphrases) * (variant.n if variant.n is not None else q.samples_per_paraphrase)
        for q in variant.qset
    )


def check_size(exp: Experiment, units: list[ModelUnit], variants: list[Variant]) -> None:
    """Refuse a plan too big to list, with its size, before any per-answer item is made."""
    total = 0
    for unit in units:
        total += sum(count_answers(v) for v in variants if v.context_base in (None, unit.base))
    if total > MAX_PLANNED_ANSWERS:
        raise EmkitError(
            f"{exp.name}: the plan asks for {total:,} answers ({len(units)} models x "
            f"{len(variants)} question variants) and up to {2 * total:,} judge calls; at most "
            f"{MAX_PLANNED_ANSWERS:,} answers can be planned at once: lower samples_per_paraphrase "
            "(or the question files' own), or split the study"
        )
