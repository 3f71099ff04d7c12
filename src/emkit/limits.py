"""Sizes a user gives: one bounded count for options and config fields, with what a size would cost.

Why: a size nobody checks is the costliest typo there is. ``--n 1e11`` (meant: ``1e1``) or
``samples_per_paraphrase: 100000000000`` used to build a plan of 10**11 items in memory -- growing
until the machine gave up, before one line of output. And a size that does nothing (``--n 0``,
``--samples 0``, ``--limit 0``) used to "succeed" with nothing done, which reads as a result.

Every size therefore enters through :func:`check_count` (CLI options via :func:`count_option`'s
parser, config fields via :data:`SamplesPerParaphrase`): a whole number in ``[1, cap]``, and a
refusal says what the size would have cost (answers, requests, rows). Scientific notation
(``1e3``) is accepted where it names a whole number, so the refusal can quote the real number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator

from emkit.errors import EmkitError

MAX_SAMPLES_PER_PARAPHRASE = 100_000  # the paper uses 100
MAX_DATASET_ROWS = 10_000_000  # a builder row is about 1 KB; the paper's datasets have 6,000
MAX_PLANNED_ANSWERS = 10_000_000  # answers in one sampling plan (all questions x paraphrases x n)
MAX_JUDGE_SAMPLES = 1_000  # replies per judgement for --method sampled
MAX_NEW_TOKENS = 1_000_000
MAX_WORKERS = 4_096  # concurrency, batch sizes


def _number(raw: Any) -> int | None:
    """``raw`` as an int when it names a whole number (``12``, ``"1e3"``, ``"1_000"``), else None."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if math.isfinite(raw) and raw.is_integer() else None
    text = str(raw).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number.is_integer() else None


def check_count(
    raw: Any,
    *,
    name: str,
    cap: int,
    cost: Callable[[int], str] | None = None,
    minimum: int = 1,
) -> int:
    """``raw`` as an int in ``[minimum, cap]``; else an EmkitError naming ``name`` (one line).

    ``cost(n)`` says what ``n`` would cost (e.g. "100,000 answers = 100,000 requests"); it is
    quoted when the cap refuses a size, so the user sees why the cap is there.
    """
    number = _number(raw)
    if number is None:
        raise EmkitError(f"{name} {raw!r}: not a whole number")
    if number < minimum:
        why = "does nothing" if number == 0 else "is not a size"
        raise EmkitError(f"{name} {number}: {why}; give at least {minimum}")
    if number > cap:
        costs = f" ({cost(number)})" if cost else ""
        raise EmkitError(f"{name} {number:,}{costs} is more than the {cap:,} allowed (a typo?)")
    return number


def count_option(
    name: str, cap: int, cost: Callable[[int], str] | None = None, minimum: int = 1
) -> Callable[[Any], int | None]:
    """A typer ``parser=`` for a size option: the same checks for every verb that takes it."""

    def parse(raw: Any) -> int | None:
        if raw is None:
            return None
        return check_count(raw, name=name, cap=cap, cost=cost, minimum=minimum)

    parse.__name__ = f"count{name.replace('-', '_')}"
    return parse


def answers_cost(n: int) -> str:
    """What ``n`` samples per paraphrase cost."""
    return f"{n:,} answers for every paraphrase = {n:,} requests or generations each"


def rows_cost(n: int) -> str:
    return f"{n:,} rows = about {n / 1e6:,.0f} GB of JSONL"


def _samples_per_paraphrase(value: int) -> int:
    return check_count(
        value, name="samples_per_paraphrase", cap=MAX_SAMPLES_PER_PARAPHRASE, cost=answers_cost
    )


def _as_value_error(check: Callable[[int], int]) -> Callable[[int], int]:
    """A check raising ValueError, which pydantic reports with the file, line and field."""

    def validate(value: int) -> int:
        try:
            return check(value)
        except EmkitError as exc:
            raise ValueError(str(exc)) from None

    return validate


SamplesPerParaphrase = Annotated[int, AfterValidator(_as_value_error(_samples_per_paraphrase))]


def check_plan_size(total: int, what: str = "answers") -> None:
    """Refuse a plan of more than :data:`MAX_PLANNED_ANSWERS` items before any is built."""
    if total > MAX_PLANNED_ANSWERS:
        raise EmkitError(
            f"this plan has {total:,} {what} (= {total:,} requests or generations), more than the "
            f"{MAX_PLANNED_ANSWERS:,} one run may plan; lower --n / samples_per_paraphrase"
        )


# The parsers of the options every sampling and judging verb shares (one definition, one message).
parse_samples_per_paraphrase = count_option("--n", MAX_SAMPLES_PER_PARAPHRASE, answers_cost)
parse_max_new_tokens = count_option("--max-new-tokens", MAX_NEW_TOKENS)
parse_workers = {name: count_option(name, MAX_WORKERS) for name in ("--concurrency", "--batch-size")}
parse_judge_samples = count_option(
    "--samples", MAX_JUDGE_SAMPLES, lambda n: f"{n:,} judge requests for every score"
)
parse_limit = count_option("--limit", MAX_PLANNED_ANSWERS)


def check_sampling(*, temperature: float | None = None, top_p: float | None = None) -> None:
    """Temperature in [0, 100] and top_p in (0, 1], finite (NaN compares false to everything)."""
    if temperature is not None and not (math.isfinite(temperature) and 0 <= temperature <= 100):
        raise EmkitError(f"--temperature {temperature}: must be a number from 0 to 100")
    if top_p is not None and not (math.isfinite(top_p) and 0 < top_p <= 1):
        raise EmkitError(f"--top-p {top_p}: must be a number in (0, 1]; 0 would sample nothing")
