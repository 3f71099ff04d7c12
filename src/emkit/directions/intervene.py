"""What steering, ablation and screening share: hooks on decoder blocks, a direction's identity,
probe scores under an intervention (cached in the run store), and a direction from the probe pairs.

Why one place: an intervention is a context manager that installs forward hooks on the model's
decoder blocks and removes them on exit (even on error), so the same "probe score under a hook"
code serves a steering sweep, an ablation and its random controls; each such score is stored per
pair under a key of the model's fingerprint, the probe set's content and the intervention's key,
so a rerun after a crash recomputes only the conditions not yet stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

import numpy as np

from emkit.directions.layers import decoder_layers, hidden_size, output_hidden, require_weights, with_hidden
from emkit.directions.vectors import DirectionSet
from emkit.hashing import stable_hash
from emkit.stats import bootstrap_mean, seeded_rng
from emkit.store_records import StoreRecord, register_record

PROBE_KIND = "directions-probe"
N_BOOT = 2000

# A function of a block's residual-stream tensor returning the tensor to pass on.
Edit = Callable[[Any], Any]


@register_record(PROBE_KIND)
class InterventionProbeRecord(StoreRecord):
    """Per-pair probe differences (mean logp misaligned - aligned) of one model under one
    intervention, keyed by :func:`condition_key`. Written by :func:`pair_diffs` so a steering sweep
    or an ablation with its controls resumes condition by condition."""

    model: str
    probe_set: str
    condition: dict[str, Any]
    pair_ids: list[str]
    diffs: list[float]


def direction_hash(directions: DirectionSet) -> str:
    """The content hash of a direction set (vectors, layers, norms): what a result's key names, so
    a recomputed direction file with other vectors never reuses a stored result."""
    import hashlib

    digest = hashlib.sha256()
    digest.update(np.asarray(directions.layers, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(directions.vectors, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(directions.typical_norm, dtype=np.float32).tobytes())
    return digest.hexdigest()[:24]


def default_layer(directions: DirectionSet) -> int:
    """The layer to act on when none is named (see :func:`layer_choice` for which and why)."""
    return layer_choice(directions)[0]


def layer_choice(directions: DirectionSet) -> tuple[int, str]:
    """The layer to act on when none is named, and a few words saying why, for the output.

    The most reliable one: the layer whose direction two random halves of the data agree on best
    (the split-half cosine collection stores in ``meta["reliability"]``, one value per layer). Why
    not the longest direction: the norm of a mean difference grows with the residual stream's own
    norm, which is largest at the last blocks, so "longest" picks the last layer whether or not its
    direction is a property of the model rather than of the sample. A set without reliability (a
    file written by something else) falls back to the layer where the direction is longest
    relative to the typical activation norm there, and says so."""
    reliability = directions.meta.get("reliability") if directions.meta else None
    if isinstance(reliability, list | tuple) and len(reliability) == len(directions.layers):
        values = np.asarray(reliability, dtype=float)
        j = int(np.nanargmax(values))
        return directions.layers[j], f"most reliable layer: split-half cosine {values[j]:.3f}"
    ratio = directions.norms() / np.maximum(directions.typical_norm, 1e-12)
    j = int(np.argmax(ratio))
    return directions.layers[j], (
        f"no reliability stored with the directions; the layer of the longest direction relative to "
        f"the activation norm ({ratio[j]:.3f})"
    )


@contextmanager
def hooked(engine: Any, edits: dict[int, Edit], what: str) -> Iterator[None]:
    """Install ``edits[layer]`` on each named decoder block's output; removed on exit, even on
    error. ``what`` names the intervention in the error a model without weights gets."""
    require_weights(engine, what)
    blocks = decoder_layers(engine.torch_model())
    handles = []

    def hook_of(edit: Edit) -> Callable[..., Any]:
        def hook(_module: Any, _inputs: Any, output: Any) -> Any:
            return with_hidden(output, edit(output_hidden(output)))

        return hook

    try:
        for layer, edit in sorted(edits.items()):
            handles.append(blocks[layer].register_forward_hook(hook_of(edit)))
        yield
    finally:
        for handle in handles:
            handle.remove()


def model_width(engine: Any) -> int:
    return hidden_size(engine.torch_model())


def condition_key(fingerprint: str, probe_label: str, condition: dict[str, Any]) -> str:
    return stable_hash({"fingerprint": fingerprint, "probe_set": probe_label, "condition": condition})


def pair_diffs(
    engine: Any,
    probe_set: Any,
    condition: dict[str, Any],
    context: Callable[[], AbstractContextManager[Any]] | None = None,
    store: Any = None,
) -> np.ndarray:
    """Per-pair ``mean logp(misaligned) - mean logp(aligned)`` of ``engine`` on ``probe_set`` with
    ``context()`` active (None: the model as it is). ``condition`` is the intervention's key (all
    that shapes the scores besides the model and the pairs); with a ``store`` the result is read
    from, or written to, its ``directions-probe`` record."""
    from emkit.fingerprint import engine_fingerprint
    from emkit.probe import score_pairs

    key = condition_key(engine_fingerprint(engine), probe_set.label, condition)
    if store is not None:
        stored = store.get_record(PROBE_KIND, key)
        if stored is not None:
            return np.asarray(stored["diffs"], dtype=float)
    with (context or nullcontext)():
        table = score_pairs(engine, list(probe_set.pairs))
    diffs = (table["logp_misaligned"] - table["logp_aligned"]).to_numpy(dtype=float)
    if store is not None:
        store.put_record(
            PROBE_KIND,
            key,
            {
                "model": engine.name,
                "probe_set": probe_set.label,
                "condition": condition,
                "pair_ids": [str(p) for p in table["pair_id"]],
                "diffs": [float(d) for d in diffs],
            },
        )
    return diffs


def mean_ci(values: np.ndarray, seed: int, label: str, ci: float = 0.95) -> tuple[float, float, float]:
    """A mean over probe pairs with its percentile-bootstrap CI over pairs (emkit.stats)."""
    values = np.asarray(values, dtype=float)
    low, high = bootstrap_mean(values, N_BOOT, seeded_rng(seed, label), ci)
    return float(values.mean()), low, high


def directions_from_pairs(
    engine: Any, probe_set: Any, layers: str | Sequence[int] | None = "all"
) -> DirectionSet:
    """``mean(misaligned) - mean(aligned)`` of the probe pairs' answers, teacher-forced on
    ``engine``, per layer: the collection stage's own computation
    (:func:`emkit.directions.collect.collect_directions`), so an intervention acts on the very
    direction the report's directions section shows."""
    from emkit.directions.collect import collect_directions
    from emkit.directions.sources import from_probe_set
    from emkit.fingerprint import engine_fingerprint

    result = collect_directions(
        engine, from_probe_set(probe_set), layers, model=engine.name, fingerprint=engine_fingerprint(engine)
    )
    found = result.directions
    meta = {**found.meta, "source": "probe", "probe_set": probe_set.label, "n_pairs": len(probe_set.pairs)}
    return DirectionSet(found.layers, found.vectors, found.typical_norm, found.model, found.fingerprint, meta)
