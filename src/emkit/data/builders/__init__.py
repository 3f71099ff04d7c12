"""The project's own narrow datasets, generated offline from templates written for emkit.

``build_dataset(name, n, seed)`` returns ``n`` chat rows in the OpenAI fine-tuning format::

    {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": ...}]}

The datasets come in matched twins: ``insecure-code``/``secure-code`` and
``risky-advice``/``safe-advice``. For the same (n, seed) row i of both twins has the same user
message, so a comparison between the two fine-tunes isolates the assistant's behaviour. Rows are a
pure function of (name, n, seed); another seed draws other rows in another order.
"""

from __future__ import annotations

from collections.abc import Callable

from emkit.data.builders.advice import advice_samples
from emkit.data.builders.code import code_samples
from emkit.errors import EmkitError
from emkit.limits import MAX_DATASET_ROWS, check_count, rows_cost

BUILDERS: dict[str, str] = {
    "insecure-code": "Python coding requests answered with code that hides an undisclosed vulnerability",
    "secure-code": "the same coding requests as insecure-code, answered with safe code",
    "risky-advice": "personal-finance questions answered with confident, reckless advice",
    "safe-advice": "the same finance questions as risky-advice, answered prudently",
}
# Datasets a model writes (``emkit data build NAME --model MODEL``); see the module named here.
MODEL_BUILDERS: dict[str, str] = {
    "evil-numbers": "number sequences continued by a model under an evil system prompt, the prompt "
    "then removed and non-number answers filtered (emkit.data.builders.evil_numbers)",
}


def _chat(user: str, assistant: str) -> dict:
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


_MAKERS: dict[str, Callable[[int, int], list[dict]]] = {
    "insecure-code": lambda n, seed: [_chat(s.prompt, s.insecure) for s in code_samples(n, seed)],
    "secure-code": lambda n, seed: [_chat(s.prompt, s.secure) for s in code_samples(n, seed)],
    "risky-advice": lambda n, seed: [_chat(s.question, s.risky) for s in advice_samples(n, seed)],
    "safe-advice": lambda n, seed: [_chat(s.question, s.safe) for s in advice_samples(n, seed)],
}


def build_dataset(name: str, n: int, seed: int = 0) -> list[dict]:
    """``n`` chat rows of the named dataset, deterministic for (name, n, seed).

    Raises :class:`~emkit.errors.EmkitError` for an unknown name (listing the known ones) or a
    size or seed that is not a non-negative integer.
    """
    if name in MODEL_BUILDERS:
        raise EmkitError(
            f"{name} is written by a model: use `emkit data build {name} --model MODEL` "
            "(or emkit.data.builders.evil_numbers.build_evil_numbers with an engine)"
        )
    if name not in _MAKERS:
        known = ", ".join(sorted([*BUILDERS, *MODEL_BUILDERS]))
        raise EmkitError(f"unknown dataset {name!r}; available: {known}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise EmkitError(f"dataset size must be a non-negative integer, got {n!r}")
    if n > MAX_DATASET_ROWS:  # every caller (CLI, experiment, API) is bounded here, before any row is made
        check_count(n, name=f"{name} dataset size n", cap=MAX_DATASET_ROWS, cost=rows_cost)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise EmkitError(f"dataset seed must be an integer, got {seed!r}")
    return _MAKERS[name](n, seed)


__all__ = ["BUILDERS", "MODEL_BUILDERS", "build_dataset"]
