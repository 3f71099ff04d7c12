"""Data screening before training (persona-vector style): how far a dataset's responses lie along
the base model's misalignment direction, compared with the base model's own answers to the same
prompts.

Why against the base's own answers: a response's raw projection mixes the direction with whatever
any answer to that prompt projects to (topic, length, format); the base model's own answer to the
same prompt is the baseline, so the per-row "projection difference" ``proj(dataset response) -
proj(base answer)`` says how much more misaligned-looking the data is than what the model would
have said. Both are teacher-forced on the base model; a projection is the mean activation over the
response's tokens dotted with the unit direction at one layer. A dataset's score is the mean
difference over rows, with a percentile-bootstrap CI over rows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emkit.directions.activations import collect_means
from emkit.directions.intervene import N_BOOT, direction_hash, model_width
from emkit.directions.vectors import DirectionSet
from emkit.errors import EmkitError
from emkit.hashing import stable_hash
from emkit.stats import bootstrap_mean, seeded_rng
from emkit.store_records import StoreRecord, register_record

SCREEN_KIND = "screening"


@register_record(SCREEN_KIND)
class ScreeningRecord(StoreRecord):
    """One dataset's screening, keyed by :func:`screen_key` (base fingerprint, the rows' content,
    direction hash, layer, generation settings). Written by :func:`screen_dataset`."""

    dataset: str
    model: str
    layer: int
    mean_diff: float
    ci: list[float]
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ScreenResult:
    dataset: str
    model: str
    layer: int
    mean_diff: float
    ci_low: float
    ci_high: float
    mean_data: float
    mean_base: float
    rows: list[dict[str, Any]]  # index, proj_data, proj_base, diff, tokens
    skipped: int = 0  # rows whose base answer came back empty

    def summary(self) -> str:
        return (
            f"{self.dataset}: projection difference {self.mean_diff:+.3f} "
            f"[{self.ci_low:+.3f}, {self.ci_high:+.3f}] over {len(self.rows)} rows (layer {self.layer})"
        )


def prompts_and_responses(
    rows: Sequence[dict[str, Any]], name: str
) -> tuple[list[list[dict[str, str]]], list[str]]:
    """Each row's conversation before its last turn, and that turn (which must be the assistant's)."""
    prompts, responses = [], []
    for i, row in enumerate(rows):
        messages = row.get("messages") if isinstance(row, dict) else None
        if (
            not messages
            or messages[-1].get("role") != "assistant"
            or not str(messages[-1].get("content", "")).strip()
        ):
            raise EmkitError(
                f"{name}: row {i + 1}: messages: the last turn must be a non-empty assistant reply"
            )
        prompts.append([{"role": m["role"], "content": m["content"]} for m in messages[:-1]])
        responses.append(str(messages[-1]["content"]))
    return prompts, responses


def screen_key(
    fingerprint: str, rows_hash: str, directions: DirectionSet, layer: int, max_new_tokens: int, seed: int
) -> str:
    return stable_hash(
        {
            "fingerprint": fingerprint,
            "rows": rows_hash,
            "directions": direction_hash(directions),
            "layer": layer,
            "max_new_tokens": max_new_tokens,
            "seed": seed,
        }
    )


def screen_dataset(
    engine: Any,
    rows: Sequence[dict[str, Any]],
    directions: DirectionSet,
    layer: int,
    *,
    name: str = "dataset",
    max_new_tokens: int = 48,
    seed: int = 0,
    store: Any = None,
) -> ScreenResult:
    """Project each row's assistant response and the base model's own sampled answer to the same
    prompt (temperature 1, ``max_new_tokens``, seeded per row) on ``directions`` at ``layer``."""
    from emkit.engines.base import SamplingParams
    from emkit.fingerprint import engine_fingerprint

    directions.check_width(model_width(engine), engine.name)
    unit = directions.unit(layer)
    prompts, responses = prompts_and_responses(rows, name)
    key = screen_key(
        engine_fingerprint(engine), stable_hash([list(rows)]), directions, layer, max_new_tokens, seed
    )
    if store is not None:
        stored = store.get_record(SCREEN_KIND, key)
        if stored is not None:
            return ScreenResult(**{k: v for k, v in stored.items() if k in ScreenResult.__dataclass_fields__})
    params = SamplingParams(temperature=1.0, max_new_tokens=max_new_tokens, seed=seed)
    own = [g.text.strip() for g in engine.generate(prompts, params, seeds=list(range(len(prompts))))]
    keep = [i for i, text in enumerate(own) if text]
    if not keep:
        raise EmkitError(f"{name}: the base model answered every prompt with nothing; nothing to compare")
    data = collect_means(engine, [prompts[i] for i in keep], [responses[i] for i in keep], [layer])
    base = collect_means(engine, [prompts[i] for i in keep], [own[i] for i in keep], [layer])
    proj_data, proj_base = data.means[:, 0] @ unit, base.means[:, 0] @ unit
    diff = proj_data - proj_base
    low, high = bootstrap_mean(diff, N_BOOT, seeded_rng(seed, "screen", name), 0.95)
    per_row = [
        {
            "index": int(i),
            "proj_data": float(pd_),
            "proj_base": float(pb),
            "diff": float(d),
            "tokens": int(t),
            "base_answer": own[i][:200],
        }
        for i, pd_, pb, d, t in zip(keep, proj_data, proj_base, diff, data.tokens, strict=True)
    ]
    result = ScreenResult(
        name,
        engine.name,
        int(layer),
        float(diff.mean()),
        low,
        high,
        float(proj_data.mean()),
        float(proj_base.mean()),
        per_row,
        len(prompts) - len(keep),
    )
    if store is not None:
        store.put_record(
            SCREEN_KIND,
            key,
            {**asdict(result), "ci": [low, high], "directions": direction_hash(directions)},
        )
    return result


def write_screen(result: ScreenResult, out_dir: str | Path) -> tuple[Path, Path]:
    """``<dataset>.screen.jsonl`` (one line per row) and ``<dataset>.screen.png`` (the histogram
    of per-row differences), in ``out_dir``."""
    from emkit.outputs import output_dir, write_bytes, write_text

    folder = output_dir(out_dir)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(result.dataset).name).strip("._") or "dataset"
    lines = "".join(
        json.dumps({"dataset": result.dataset, **row}, sort_keys=True) + "\n" for row in result.rows
    )
    jsonl = write_text(folder / f"{stem}.screen.jsonl", lines)
    png = write_bytes(folder / f"{stem}.screen.png", histogram_png([result]))
    return jsonl, png


def histogram_png(results: Sequence[ScreenResult]) -> bytes:
    """:func:`emkit.report.plots_interventions.plot_screening` as PNG bytes."""
    from emkit.report.plots import png_bytes
    from emkit.report.plots_interventions import plot_screening

    return png_bytes(
        plot_screening(
            [(r.dataset, [row["diff"] for row in r.rows], r.mean_diff) for r in results], results[0].layer
        )
    )


def rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value (scipy); NaN with fewer than 3 points."""
    if len(xs) < 3:
        return float("nan"), float("nan")
    from scipy.stats import spearmanr

    rho, p = spearmanr(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float))
    return float(rho), float(p)
