"""Steering: add ``alpha * unit_direction * typical_norm`` to chosen layers' outputs, and sweep alpha.

Why scaled by the typical norm: the residual stream's size differs by layer and model, so an alpha
means the same fraction of a typical activation everywhere (alpha 1 adds one typical activation's
length along the direction). The hooks are forward hooks on the decoder blocks, removed on exit
even on error: the model is bitwise what it was afterwards (tests/test_directions_steering.py).

A sweep gives, per alpha, the probe score on the steered model (mean over pairs, bootstrap CI) and,
when asked, steered sampled answers stored in the run's ``answers`` table under a model name and
fingerprint that carry the steering, so the judging stage scores them like any other answers.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from emkit.directions.intervene import (
    direction_hash,
    hooked,
    mean_ci,
    model_width,
    pair_diffs,
)
from emkit.directions.layers import resolve_layers
from emkit.directions.vectors import DirectionSet
from emkit.engines.base import Engine, Generation, GenerationBatch
from emkit.hashing import stable_hash
from emkit.store_records import StoreRecord, register_record

STEER_KIND = "steering"


@register_record(STEER_KIND)
class SteeringRecord(StoreRecord):
    """One steering sweep's curve, keyed by :func:`sweep_key` (model fingerprint, direction hash,
    layers, alphas, probe set). Written by :func:`steering_sweep`; read by the report."""

    model: str
    group: str | None = None
    directions: str
    layers: list[int]
    points: list[dict[str, Any]]


@dataclass(frozen=True)
class SteerPoint:
    alpha: float
    score: float  # mean over pairs of logp(misaligned) - logp(aligned) on the steered model
    ci_low: float
    ci_high: float
    shift: float  # score minus the unsteered score, paired over pairs
    shift_low: float
    shift_high: float
    answers: int = 0  # steered answers stored for the judge


def steering_vectors(directions: DirectionSet, layers: Sequence[int], alpha: float) -> dict[int, np.ndarray]:
    """What is added at each layer: ``alpha * unit(layer) * typical_norm(layer)`` (float32)."""
    return {
        layer: (alpha * directions.unit(layer) * directions.typical_norm[directions.index(layer)]).astype(
            np.float32
        )
        for layer in layers
    }


@contextmanager
def steered(
    engine: Any, directions: DirectionSet, layers: str | Sequence[int] | None, alpha: float
) -> Iterator[list[int]]:
    """Within the block, every forward pass of ``engine``'s model (generation, log-probabilities,
    activations) has the steering added at ``layers``; yields the resolved layers."""
    import torch

    from emkit.directions.layers import decoder_layers

    chosen = resolve_layers(layers, len(decoder_layers(engine.torch_model())))
    directions.check_width(model_width(engine), engine.name)
    vectors = {layer: torch.from_numpy(v) for layer, v in steering_vectors(directions, chosen, alpha).items()}

    def edit_of(vector: Any) -> Any:
        def edit(hidden: Any) -> Any:
            return hidden + vector.to(device=hidden.device, dtype=hidden.dtype)

        return edit

    with hooked(engine, {layer: edit_of(v) for layer, v in vectors.items()}, "steering"):
        yield chosen


def steer_condition(directions: DirectionSet, layers: Sequence[int], alpha: float) -> dict[str, Any]:
    """Everything about a steering that shapes a result (the model is keyed apart)."""
    return {
        "steer": {"directions": direction_hash(directions), "layers": list(layers), "alpha": float(alpha)}
    }


class SteeredEngine(Engine):
    """A view of a local engine that generates with the steering on: its ``name`` and
    ``fingerprint`` carry the steering, so stored answers never mix with the plain model's."""

    def __init__(self, inner: Any, directions: DirectionSet, layers: Sequence[int], alpha: float) -> None:
        from emkit.fingerprint import engine_fingerprint

        self.inner = inner
        self.directions = directions
        self.layers = list(layers)
        self.alpha = float(alpha)
        tag = stable_hash(steer_condition(directions, self.layers, alpha), 8)
        self.name = f"{inner.name}+steer(alpha={self.alpha:g},layers={','.join(map(str, self.layers))},{tag})"
        self.fingerprint = stable_hash(
            {"model": engine_fingerprint(inner), **steer_condition(directions, self.layers, alpha)}
        )

    def _generate(self, batch: GenerationBatch) -> list[Generation]:
        with steered(self.inner, self.directions, self.layers, self.alpha):
            return self.inner.generate(
                batch.conversations, batch.params, seeds=batch.keys(), on_result=batch.deliver
            )

    def _sequence_logprobs(self, conversations: list[Any], replies: list[str]) -> list[list[float]]:
        with steered(self.inner, self.directions, self.layers, self.alpha):
            return self.inner.sequence_logprobs(conversations, replies)

    def close(self) -> None:
        """The inner engine belongs to the caller."""


def sweep_key(
    fingerprint: str,
    directions: DirectionSet,
    layers: Sequence[int],
    alphas: Sequence[float],
    probe_label: str,
    samples: dict[str, Any] | None,
) -> str:
    return stable_hash(
        {
            "fingerprint": fingerprint,
            "directions": direction_hash(directions),
            "layers": list(layers),
            "alphas": [float(a) for a in alphas],
            "probe_set": probe_label,
            "samples": samples or {},
        }
    )


def steering_sweep(
    engine: Any,
    directions: DirectionSet,
    alphas: Sequence[float],
    layers: str | Sequence[int] | None,
    probe_set: Any,
    *,
    store: Any = None,
    group: str | None = None,
    questions: Any = None,
    samples_per_question: int = 0,
    max_new_tokens: int = 200,
    seed: int = 0,
) -> list[SteerPoint]:
    """The probe score at each alpha (and, with ``questions`` and a ``store``, that many steered
    answers per paraphrase, stored for the judge). Alpha 0 is always scored: shifts are against it."""
    from emkit.directions.layers import decoder_layers
    from emkit.fingerprint import engine_fingerprint

    chosen = resolve_layers(layers, len(decoder_layers(engine.torch_model())))
    directions.check_width(model_width(engine), engine.name)
    for layer in chosen:
        directions.index(layer)  # a layer the set lacks is one line before any pass
    plain = pair_diffs(engine, probe_set, steer_condition(directions, chosen, 0.0), store=store)
    points = []
    for alpha in alphas:
        diffs = (
            plain
            if alpha == 0
            else pair_diffs(
                engine,
                probe_set,
                steer_condition(directions, chosen, alpha),
                lambda a=alpha: steered(engine, directions, chosen, a),
                store,
            )
        )
        score = mean_ci(diffs, seed, f"steer-score-{alpha}")
        shift = mean_ci(diffs - plain, seed, f"steer-shift-{alpha}")
        answers = 0
        if questions is not None and store is not None and samples_per_question > 0:
            from emkit.sampling import sample_questions

            summary = sample_questions(
                store,
                SteeredEngine(engine, directions, chosen, alpha),
                questions,
                n=samples_per_question,
                max_new_tokens=max_new_tokens,
                seed=seed,
                group=f"{group}+steer(alpha={alpha:g})" if group else None,
                tags={
                    "steer": steer_condition(directions, chosen, alpha)["steer"],
                    "base_model": engine.name,
                },
                progress=False,
            )
            answers = summary.total
        points.append(SteerPoint(float(alpha), *score, *shift, answers))
    if store is not None:
        samples = (
            {"n": samples_per_question, "max_new_tokens": max_new_tokens} if questions is not None else None
        )
        store.put_record(
            STEER_KIND,
            sweep_key(engine_fingerprint(engine), directions, chosen, alphas, probe_set.label, samples),
            {
                "model": engine.name,
                "group": group,
                "directions": direction_hash(directions),
                "layers": chosen,
                "probe_set": probe_set.label,
                "points": [asdict(p) for p in points],
            },
        )
    return points
