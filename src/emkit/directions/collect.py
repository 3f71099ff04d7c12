"""Collecting one model's directions: read its activations on labelled responses, compute, store.

The one function both the directions stage and ``emkit directions collect`` call, so a verb and a
YAML file give the same record under the same key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from emkit.directions.activations import ResponseActivations, collect_means
from emkit.directions.compute import DirectionResult, compute_directions
from emkit.directions.layers import require_weights
from emkit.directions.sources import LabelledResponses
from emkit.directions.vectors import with_responses
from emkit.errors import EmkitError

if TYPE_CHECKING:
    from emkit.store import RunStore
    from emkit.store_records import DirectionsRecord


LOCAL_MODELS = "embedded/smollm2-135m, hf/<path or id>[@adapter]"


def require_local_model(name: str, what: str) -> None:
    """Refuse, before opening anything, a model name whose backend holds no weights here."""
    from emkit.engines.registry import backend
    from emkit.models import parse_model

    if not backend(parse_model(name).scheme).local:
        raise EmkitError(
            f"{what} needs the model's weights in this process, and {name} is an API model; "
            f"use a local model: {LOCAL_MODELS}"
        )


def collect_directions(
    engine: Any,
    responses: LabelledResponses,
    layers: str | Sequence[int] | None = "all",
    *,
    resamples: int = 200,
    seed: int = 0,
    model: str = "",
    fingerprint: str = "",
) -> DirectionResult:
    """Teacher-force every labelled response through ``engine`` (one batched, length-grouped pass
    over both labels) and compute the per-layer directions and their reliability."""
    require_weights(engine, "collecting directions")
    responses.check_enough()
    every = [*responses.aligned, *responses.misaligned]
    acts = collect_means(engine, [r.conversation() for r in every], [r.reply for r in every], layers)
    n = len(responses.aligned)
    aligned = ResponseActivations(acts.layers, acts.means[:n], acts.tokens[:n])
    misaligned = ResponseActivations(acts.layers, acts.means[n:], acts.tokens[n:])
    result = compute_directions(
        aligned,
        misaligned,
        resamples=resamples,
        seed=seed,
        model=model,
        fingerprint=fingerprint,
        meta={
            "source": responses.description,
            "data_hash": responses.hash,
            "split_seed": seed,
            "answer_tokens": int(np.sum(acts.tokens)),
            "paired": responses.paired,
        },
    )
    # The per-response means travel with the vectors (aligned rows first): what a comparison's
    # bootstrap resamples (:mod:`emkit.directions.compare_ci`).
    return replace(result, directions=with_responses(result.directions, acts.means, n))


def collect_and_store(
    engine: Any,
    store: RunStore,
    key: str,
    responses: LabelledResponses,
    layers: str | Sequence[int] | None,
    *,
    resamples: int,
    seed: int,
    model: str,
    group: str | None = None,
    model_seed: int | None = None,
) -> tuple[DirectionsRecord, bool]:
    """The stored record under ``key`` (``False``: it was there already) or a new one (``True``)."""
    from emkit.directions.storage import save_result, stored_directions

    found = stored_directions(store, key)
    if found is not None:
        return found, False
    result = collect_directions(
        engine,
        responses,
        layers,
        resamples=resamples,
        seed=seed,
        model=model,
        fingerprint=engine.fingerprint or "",
    )
    record = save_result(
        store,
        key,
        result,
        source=responses.description,
        data_hash=responses.hash,
        group=group,
        seed=model_seed,
    )
    return record, True
