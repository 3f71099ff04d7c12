"""The paper's other experiments, each a thin layer over the main stages (sample, judge, analyze).

- :mod:`~emkit.experiments.code_vuln`: does the model write vulnerable code? (YES/NO judge + bandit)
- :mod:`~emkit.experiments.evil_numbers`: the evil-numbers question wrappers applied to any set
- :mod:`~emkit.experiments.icl`: k-shot in-context prompts from a dataset's rows (the ICL control)
- :mod:`~emkit.experiments.backdoor`: misaligned rates with and without the trigger, side by side
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SampleOptions:
    """What ``emkit sample --wrapper/--icl`` changes: the question set, ``n``, tags and a context."""

    qset: Any  # emkit.questions.QuestionSet
    n: int | None
    tags: dict[str, Any]
    context: list[dict[str, str]] | None = None
    notes: list[str] = field(default_factory=list)


def apply_sample_options(
    qset: Any,
    *,
    n: int | None,
    tags: dict[str, Any] | None = None,
    wrapper: str | None = None,
    wrappers_file: str = "evil_numbers_question_wrappers",
    wrapper_seed: int = 12345,
    icl: str | None = None,
    icl_k: int = 256,
    icl_seed: int = 0,
    engine: Any = None,
    max_new_tokens: int = 600,
    mirror: Any = None,
) -> SampleOptions:
    """Wrap the questions (evil numbers) and/or build an in-context prefix (ICL) for the sampler.

    With a wrapper, ``n`` becomes the number of wrapped paraphrases per original paraphrase and the
    sampler is then called with ``n=None`` (each wrapped paraphrase once). With ``icl``, the context
    is fitted to a local engine's context window (``max_new_tokens`` kept for the answer); an API
    engine has no tokenizer here, so its context is not length-checked.
    """
    out = SampleOptions(qset, n, dict(tags or {}))
    if wrapper:
        from emkit.experiments.evil_numbers import wrap_question_set, wrapper_tags

        out.qset = wrap_question_set(
            qset, wrapper, wrappers_file=wrappers_file, mirror=mirror, n=n, seed=wrapper_seed
        )
        out.n = None
        out.tags.update(wrapper_tags(wrapper, wrapper_seed))
        out.notes.append(
            f"wrapper {wrapper}: {len(out.qset)} questions, "
            f"{sum(len(q.paraphrases) for q in out.qset)} wrapped paraphrases"
        )
    if icl:
        from emkit.experiments.icl import engine_context_window, load_context

        tokenizer, window = engine_context_window(engine) if engine is not None else (None, None)
        context = load_context(
            icl,
            icl_k,
            seed=icl_seed,
            mirror=mirror,
            tokenizer=tokenizer,
            max_context_tokens=window,
            questions=list(out.qset),
            reserve_tokens=max_new_tokens,
        )
        out.context = context.messages
        out.tags.update(context.tags())
        out.notes.extend(context.notes)
        tokens = (
            f", {context.prompt_tokens} prompt tokens for the longest question"
            if context.prompt_tokens
            else ""
        )
        out.notes.append(
            f"in-context examples: k = {context.k_used} of {context.k_requested} from {icl}{tokens}"
        )
    return out
