"""Ablation: project a direction out of the residual stream, and measure how much of a fine-tune's
probe shift against its base disappears.

"Ablation removes X% [CI] of the shift": with per-pair probe differences ``d`` (mean logp of the
misaligned answer minus the aligned one) of the base ``b``, the fine-tune ``t`` and the fine-tune
under ablation ``a``, ``shift = mean(d_t - d_b)`` and ``X = mean(d_t - d_a) / mean(d_t - d_b)``;
its CI is a percentile bootstrap over probe pairs (the same resample for numerator and
denominator, so the ratio's pairing is kept). Controls, by default: at least 10 random directions
(seeded; a unit direction's projection does not depend on its length, and each has the direction's
norm recorded for the steering-style reading) as a distribution, and the base model's own direction
ablated from the fine-tune. The hook works in float32 whatever the model's dtype.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from emkit.directions.intervene import direction_hash, hooked, mean_ci, model_width, pair_diffs
from emkit.directions.layers import decoder_layers, resolve_layers
from emkit.directions.vectors import DirectionSet
from emkit.hashing import stable_hash
from emkit.stats import percentile, seeded_rng
from emkit.store_records import StoreRecord, register_record

ABLATE_KIND = "ablation"
N_BOOT = 2000


@register_record(ABLATE_KIND)
class AblationRecord(StoreRecord):
    """One ablation measurement with its controls, keyed by :func:`ablation_key`. Written by
    :func:`measure_ablation`; read by the report's interventions section."""

    model: str
    base: str
    directions: str
    layers: list[int]
    shift: float
    removed: dict[str, Any]
    random: list[float] = field(default_factory=list)
    base_direction: dict[str, Any] | None = None


@contextmanager
def ablated(engine: Any, units: Mapping[int, np.ndarray]) -> Iterator[None]:
    """Within the block, the component along ``units[layer]`` (unit vectors) is removed from each
    named block's output at every position."""
    import torch

    width = model_width(engine)
    tensors = {}
    for layer, u in units.items():
        u = np.asarray(u, dtype=np.float32)
        if u.shape != (width,):
            raise ValueError(f"ablation: a direction of shape {u.shape} for a {width}-wide model")
        tensors[layer] = torch.from_numpy(u)

    def edit_of(unit: Any) -> Any:
        def edit(hidden: Any) -> Any:
            h = hidden.to(torch.float32)
            u = unit.to(h.device)
            return (h - (h @ u).unsqueeze(-1) * u).to(hidden.dtype)

        return edit

    with hooked(engine, {layer: edit_of(u) for layer, u in tensors.items()}, "ablation"):
        yield


def direction_units(directions: DirectionSet, layers: Sequence[int]) -> dict[int, np.ndarray]:
    return {layer: directions.unit(layer) for layer in layers}


def random_units(width: int, layers: Sequence[int], n: int, seed: int) -> list[dict[int, np.ndarray]]:
    """``n`` sets of random unit directions (Gaussian, normalised), one per layer, seeded."""
    rng = seeded_rng(seed, "ablation-random")
    out = []
    for _ in range(n):
        draw = {}
        for layer in layers:
            v = rng.standard_normal(width).astype(np.float32)
            draw[layer] = v / np.linalg.norm(v)
        out.append(draw)
    return out


@dataclass(frozen=True)
class Removed:
    """The share of the shift an ablation removes, with its bootstrap CI over pairs."""

    share: float
    low: float
    high: float


@dataclass
class AblationResult:
    model: str
    base: str
    layers: list[int]
    shift: float
    shift_low: float
    shift_high: float
    removed: Removed
    random: list[float]  # the share removed by each random direction
    base_direction: Removed | None = None

    def summary(self) -> str:
        r = self.removed
        line = f"ablation removes {100 * r.share:.0f}% [{100 * r.low:.0f}, {100 * r.high:.0f}] of the shift"
        if self.random:
            lo, hi = np.min(self.random), np.max(self.random)
            line += f"; {len(self.random)} random directions: {100 * np.median(self.random):.0f}% median ({100 * lo:.0f} to {100 * hi:.0f})"
        if self.base_direction is not None:
            line += f"; the base's direction: {100 * self.base_direction.share:.0f}%"
        return line


def removed_share(
    d_base: np.ndarray, d_tuned: np.ndarray, d_ablated: np.ndarray, seed: int, label: str
) -> Removed:
    """``mean(d_t - d_a) / mean(d_t - d_b)`` with a paired percentile bootstrap over pairs."""
    num, den = d_tuned - d_ablated, d_tuned - d_base
    share = float(num.mean() / den.mean()) if den.mean() != 0 else float("nan")
    idx = seeded_rng(seed, label).integers(0, num.size, size=(N_BOOT, num.size))
    with np.errstate(divide="ignore", invalid="ignore"):
        draws = num[idx].mean(axis=1) / den[idx].mean(axis=1)
    draws = draws[np.isfinite(draws)]
    low, high = percentile(draws, 0.95) if draws.size else (float("nan"), float("nan"))
    return Removed(share, low, high)


def ablation_key(
    base_fp: str,
    tuned_fp: str,
    directions: DirectionSet,
    layers: Sequence[int],
    probe_label: str,
    n_random: int,
    seed: int,
    base_directions: DirectionSet | None,
) -> str:
    return stable_hash(
        {
            "base": base_fp,
            "tuned": tuned_fp,
            "directions": direction_hash(directions),
            "layers": list(layers),
            "probe_set": probe_label,
            "random": n_random,
            "seed": seed,
            "base_directions": direction_hash(base_directions) if base_directions is not None else None,
        }
    )


def measure_ablation(
    base: Any,
    tuned: Any,
    directions: DirectionSet,
    probe_set: Any,
    *,
    layers: str | Sequence[int] | None = "all",
    random_controls: int = 10,
    seed: int = 0,
    base_directions: DirectionSet | None = None,
    store: Any = None,
) -> AblationResult:
    """Ablate ``directions`` (the fine-tune's) from ``tuned`` at ``layers`` and report the share of
    its probe shift against ``base`` removed, beside ``random_controls`` random directions and, when
    given, ``base_directions`` (the base model's own direction) ablated from ``tuned``."""
    from emkit.fingerprint import engine_fingerprint

    chosen = resolve_layers(layers, len(decoder_layers(tuned.torch_model())))
    width = model_width(tuned)
    directions.check_width(width, tuned.name)
    if base_directions is not None:
        base_directions.check_width(width, tuned.name)
    d_base = pair_diffs(base, probe_set, {"plain": True}, store=store)
    d_tuned = pair_diffs(tuned, probe_set, {"plain": True}, store=store)

    def under(units: dict[int, np.ndarray], condition: dict[str, Any]) -> np.ndarray:
        return pair_diffs(tuned, probe_set, {"ablate": condition}, lambda: ablated(tuned, units), store)

    layer_list = list(chosen)
    d_abl = under(
        direction_units(directions, chosen), {"directions": direction_hash(directions), "layers": layer_list}
    )
    removed = removed_share(d_base, d_tuned, d_abl, seed, "ablation")
    random = []
    for k, units in enumerate(random_units(width, chosen, random_controls, seed)):
        d_rand = under(units, {"random": k, "seed": seed, "layers": layer_list})
        den = (d_tuned - d_base).mean()
        random.append(float((d_tuned - d_rand).mean() / den) if den != 0 else float("nan"))
    base_removed = None
    if base_directions is not None:
        d_bdir = under(
            direction_units(base_directions, chosen),
            {"directions": direction_hash(base_directions), "layers": layer_list},
        )
        base_removed = removed_share(d_base, d_tuned, d_bdir, seed, "ablation-base-direction")
    shift = mean_ci(d_tuned - d_base, seed, "ablation-shift")
    result = AblationResult(tuned.name, base.name, layer_list, *shift, removed, random, base_removed)
    if store is not None:
        store.put_record(
            ABLATE_KIND,
            ablation_key(
                engine_fingerprint(base),
                engine_fingerprint(tuned),
                directions,
                chosen,
                probe_set.label,
                random_controls,
                seed,
                base_directions,
            ),
            {
                "model": tuned.name,
                "base": base.name,
                "directions": direction_hash(directions),
                "layers": layer_list,
                "probe_set": probe_set.label,
                "shift": result.shift,
                "shift_ci": [result.shift_low, result.shift_high],
                "removed": asdict(removed),
                "random": random,
                "base_direction": asdict(base_removed) if base_removed is not None else None,
            },
        )
    return result
