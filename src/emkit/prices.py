"""The price table every printed cost comes from: ``resources/prices.yaml``, updated by ``--prices FILE``.

Why one file: the judge's cost line, a provider fine-tune's confirmation and the dry run's plan
used to carry three hand-kept tables that drifted apart. Now the dated, sourced file shipped with
emkit is the only one, and a user's file (same layout, only what it changes, or the older flat
``model: {input, output}`` map) is laid over it; ``$EMKIT_PRICES`` names one when no option does.
A bad file is refused in one line naming ``file:line`` and the field.
"""

from __future__ import annotations

import functools
import importlib.resources
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emkit.errors import InputError

PRICES_ENV = "EMKIT_PRICES"
BUILTIN = "emkit/resources/prices.yaml"
PRICE_FIELDS = (
    "input",
    "output",
    "training",
    "ft_input",
    "ft_output",
    "batch_input",
    "batch_output",
    "batch_ft_input",
    "batch_ft_output",
)
ASSUMPTIONS = {
    "completion_fraction": float,
    "tokens_per_row": float,
    "gpu_name": str,
    "train_flops_per_s": float,
    "sample_flops_per_s": float,
}
TOP_LEVEL = ("date", "source", "batch_discount", "models", "assumptions")
_DATE = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")
_SCIENTIFIC = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+")


@dataclass(frozen=True)
class ModelPrice:
    """One model's prices in USD per 1M tokens (None: not known for this model)."""

    input: float | None = None
    output: float | None = None
    training: float | None = None
    ft_input: float | None = None
    ft_output: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None
    batch_ft_input: float | None = None
    batch_ft_output: float | None = None


@dataclass(frozen=True)
class PriceTable:
    """The models' prices, where they came from (date, source page, files laid over) and the
    assumptions a dry run makes where it cannot count."""

    models: dict[str, ModelPrice]
    date: str
    source: str
    batch_discount: float
    assumptions: dict[str, Any]
    files: tuple[str, ...] = field(default=(BUILTIN,))

    def rate(self, model: str, name: str) -> float | None:
        """One price of ``model`` (``gpt-4o`` = ``openai/gpt-4o``): its own entry's, else that of a
        dated snapshot of the same family (``gpt-4o`` is fine-tuned as ``gpt-4o-2024-08-06``)."""
        full = _full_name(model)
        own = self.models.get(full)
        if own is not None and getattr(own, name) is not None:
            return getattr(own, name)
        family = _DATE.sub("", full)
        for other, entry in self.models.items():
            if _DATE.sub("", other) == family and getattr(entry, name) is not None:
                return getattr(entry, name)
        return None

    def request_usd(
        self, model: str, prompt: float, completion: float, *, fine_tuned: bool = False, batch: bool = False
    ) -> float | None:
        """USD for ``prompt`` and ``completion`` tokens of requests; None when a price is unknown.

        ``fine_tuned``: the requests go to a model fine-tuned from ``model`` (its ``ft_`` prices);
        ``batch``: through the Batch API (its own price, else the standard x ``batch_discount``).
        """
        kind = "ft_" if fine_tuned else ""
        rates = []
        for side in ("input", "output"):
            rate = self.rate(model, f"batch_{kind}{side}") if batch else None
            if rate is None:
                rate = self.rate(model, f"{kind}{side}")
                if rate is not None and batch:
                    rate *= self.batch_discount
            rates.append(rate)
        if rates[0] is None or rates[1] is None:
            return None
        return (prompt * rates[0] + completion * rates[1]) / 1e6

    def training_usd(self, model: str, tokens: float) -> float | None:
        """USD for a provider fine-tuning job of ``tokens`` training tokens (tokens x epochs)."""
        rate = self.rate(model, "training")
        return None if rate is None else tokens * rate / 1e6

    def describe(self) -> str:
        """Where the prices came from, for the line under a cost."""
        return f"prices of {self.date} ({self.source}) from {', '.join(self.files)}"


def _full_name(model: str) -> str:
    from emkit.questions import judge_model_name

    return judge_model_name(model)


@functools.cache
def builtin_price_table() -> PriceTable:
    """The table shipped with emkit (``resources/prices.yaml``), whatever the environment says."""
    resource = importlib.resources.files("emkit.resources").joinpath("prices.yaml")
    return _parse(resource.read_text(encoding="utf-8"), BUILTIN, None)


def load_price_table(path: str | Path | None = None) -> PriceTable:
    """The built-in table, with ``path`` (or ``$EMKIT_PRICES``) laid over it."""
    table = builtin_price_table()
    chosen = path or os.environ.get(PRICES_ENV)
    if not chosen:
        return table
    from emkit.readers import read_text

    file = Path(chosen)
    text = read_text(file)  # the shared checks: missing, a directory, binary, not UTF-8
    return _parse(text, str(file), table)


def _parse(text: str, where: str, base: PriceTable | None) -> PriceTable:
    """A price file's text, laid over ``base`` (None: the file must be complete: the built-in one)."""
    from emkit.readers import parse_json
    from emkit.yamlpos import line_of, load_yaml

    if where.endswith(".json"):
        data, problem = parse_json(text)
        if problem:
            raise InputError(problem.message, where=where, field=problem.field)
    else:
        data = load_yaml(text, where)

    def fail(message: str, *loc: str) -> InputError:
        line = None if where.endswith(".json") else line_of(text, loc)
        return InputError(message, where=f"{where}:{line}" if line else where, field=".".join(loc) or None)

    if not isinstance(data, Mapping):
        raise fail("a price file maps models: {MODEL: {input: ..., output: ...}} (USD per 1M tokens)")
    if base is not None and not set(map(str, data)) & set(TOP_LEVEL):  # the older flat layout
        data = {"models": data}
        flat = True
    else:
        flat = False
    for key in data:
        if key not in TOP_LEVEL:
            raise fail(f"unknown key (expected one of {', '.join(TOP_LEVEL)})", str(key))
    models = dict(base.models) if base else {}
    raw_models = data.get("models") or {}
    if not isinstance(raw_models, Mapping):
        raise fail("expected a mapping of model names to prices", "models")
    for model, entry in raw_models.items():
        loc = (str(model),) if flat else ("models", str(model))
        name = _full_name(str(model))
        models[name] = _entry(entry, models.get(name), loc, fail)
    discount = data.get("batch_discount", base.batch_discount if base else None)
    if not _number(discount) or not 0 < float(discount) <= 1:
        raise fail(
            "batch_discount must be a number in (0, 1] (the Batch price / the standard price)",
            "batch_discount",
        )
    assumptions = dict(base.assumptions) if base else {}
    raw_assumptions = data.get("assumptions") or {}
    if not isinstance(raw_assumptions, Mapping):
        raise fail("expected a mapping", "assumptions")
    for key, value in raw_assumptions.items():
        kind = ASSUMPTIONS.get(str(key))
        if kind is None:
            raise fail(
                f"unknown assumption (expected one of {', '.join(ASSUMPTIONS)})", "assumptions", str(key)
            )
        if kind is float and (not _number(value) or float(value) <= 0):
            raise fail("must be a positive number", "assumptions", str(key))
        assumptions[str(key)] = float(value) if kind is float else str(value)
    for key in ("date", "source"):
        value = data.get(key, "-")
        if value is None or isinstance(value, Mapping | list) or not str(value).strip():
            raise fail("must be a non-empty text (a date, a web page)", key)
    if base is None and not {"date", "source"} <= set(data):
        raise fail("the built-in price file must give its date and source")
    return PriceTable(
        models,
        str(data.get("date", base.date if base else "")),
        str(data.get("source", base.source if base else "")),
        float(discount),
        assumptions,
        (*base.files, where) if base else (where,),
    )


def _number(value: Any) -> bool:
    """A finite number; ``3e14`` too, which YAML 1.1 reads as text (it wants ``3.0e+14``)."""
    if isinstance(value, str) and _SCIENTIFIC.fullmatch(value.strip()):
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < float("inf")


def _entry(entry: Any, old: ModelPrice | None, loc: tuple[str, ...], fail: Any) -> ModelPrice:
    """One model's prices, laid over what it had: input and output come together."""
    if not isinstance(entry, Mapping) or not entry:
        raise fail("expected {input: <USD per 1M tokens>, output: <USD per 1M tokens>, ...}", *loc)
    values: dict[str, float] = {}
    for key, value in entry.items():
        if key not in PRICE_FIELDS:
            raise fail(f"unknown price (expected one of {', '.join(PRICE_FIELDS)})", *loc, str(key))
        if not _number(value):
            raise fail("prices must be numbers (USD per 1M tokens)", *loc, str(key))
        if float(value) < 0:
            raise fail("prices must not be negative", *loc, str(key))
        values[str(key)] = float(value)
    for prefix in ("", "ft_", "batch_", "batch_ft_"):
        pair = {f"{prefix}input", f"{prefix}output"}
        given = pair & set(values)
        if len(given) == 1:
            missing = (pair - given).pop()
            raise fail(f"{given.pop()} is given without {missing}: give both", *loc, missing)
    return replace(old, **values) if old else ModelPrice(**values)
