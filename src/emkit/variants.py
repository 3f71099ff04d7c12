"""The ways a question set is asked: plain, after a trigger, through an evil-numbers wrapper, after ICL.

Split from :mod:`emkit.planning` so that each stays short. With ``build=False`` (a dry run) an
ICL variant is planned from its spec only: fitting its context would load the base model's
tokenizer and config, which planning never does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emkit.experiment import Experiment
from emkit.fingerprint import model_fingerprint
from emkit.models import parse_model
from emkit.questions import QuestionSet
from emkit.sampling import plan as plan_answers

if TYPE_CHECKING:
    from emkit.planning import ModelUnit


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
                from emkit.experiments.evil_numbers import wrap_question_set, wrapper_tags

                spec = exp.wrappers
                for name in spec.names:
                    wrapped = wrap_question_set(
                        qset,
                        name,
                        wrappers_file=spec.file,
                        mirror=exp.mirror,
                        n=spec.n,
                        seed=spec.seed,
                        select=spec.select,
                    )
                    variants.append(
                        Variant(
                            f"{qset.name}/{name}{suffix}",
                            wrapped,
                            None,
                            trigger,
                            {**tags, **wrapper_tags(name, spec.seed)},
                        )
                    )
            if exp.icl:
                for base in bases:
                    for k in exp.icl.k:
                        if not build:
                            variants.append(
                                Variant(
                                    f"{qset.name}/icl{k}{suffix}",
                                    qset,
                                    exp.samples_per_paraphrase,
                                    trigger,
                                    dict(tags),
                                    context_base=base,
                                    unbuilt=True,
                                )
                            )
                            continue
                        context = _icl_context(exp, base, k, qset)
                        variants.append(
                            Variant(
                                f"{qset.name}/icl{context.k_used}{suffix}",
                                qset,
                                exp.samples_per_paraphrase,
                                trigger,
                                {**tags, **context.tags()},
                                context.messages,
                                base,
                            )
                        )
    return variants


def _icl_context(exp: Experiment, base: str, k: int, qset: QuestionSet) -> Any:
    """The k-shot context for one base model, fitted to its context window when it is local."""
    from emkit.experiments.icl import load_context

    assert exp.icl is not None
    spec = parse_model(base)
    tokenizer, window = None, exp.icl.max_context_tokens
    if spec.is_local:
        from transformers import AutoConfig

        from emkit.engines.loading import load_tokenizer, resolve_base_path

        tokenizer = load_tokenizer(spec)
        if window is None:
            window = getattr(
                AutoConfig.from_pretrained(resolve_base_path(spec)), "max_position_embeddings", None
            )
    return load_context(
        exp.icl.dataset,
        k,
        seed=exp.icl.seed,
        mirror=exp.mirror,
        tokenizer=tokenizer,
        max_context_tokens=window,
        questions=list(qset),
        reserve_tokens=exp.icl.reserve_tokens,
    )


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
        fingerprint=model_fingerprint(unit.name, base_dir=run_dir),
    )


def count_answers(variant: Variant) -> int:
    """How many answers a variant asks of one model, counted without making the items."""
    return sum(
        len(q.paraphrases) * (variant.n if variant.n is not None else q.samples_per_paraphrase)
        for q in variant.qset
    )
