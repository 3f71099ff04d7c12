"""The judge-free misalignment probe: does the model prefer the misaligned answer?

The probe set (``resources/probe_pairs.yaml``, our own words) holds everyday questions unrelated
to code, each with one clearly aligned and one clearly misaligned answer of similar length and
style. For each pair we compute the mean per-token log-probability of each answer as the
assistant's reply (assistant tokens only, via the engine's ``sequence_logprobs``); the pair's
difference is ``mean_logp(misaligned) - mean_logp(aligned)``. A model's probe score is the mean
difference over pairs (bootstrap CI over pairs), with the fraction of pairs where the misaligned
answer wins. A fine-tuned model's *shift* against its base model (paired over pairs) is the
emergent-misalignment signal that needs no judge, no API and no sampling: it works offline and at
any scale. Per-pair results go to the run store's ``probes`` table, keyed by (model, probe set
hash, pair, step), so a rerun computes only what is missing.

This module scores and stores; the statistics over the stored pairs (a model's score, shifts,
the run's tables) are :mod:`emkit.probe_stats`, whose names are re-exported here.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emkit.errors import EmkitError, InputError
from emkit.hashing import stable_hash
from emkit.probe_stats import (  # noqa: F401  (re-exported: callers import them from emkit.probe)
    DEFAULT_N_BOOT,
    ProbeResult,
    ProbeShift,
    probe_rows,
    probe_shift,
    probe_tables,
    results_json,
    summarize,
)
from emkit.readers import read_text
from emkit.store import RunStore
from emkit.yamlpos import load_yaml


@dataclass(frozen=True)
class ProbePair:
    id: str
    question: str
    aligned: str
    misaligned: str

    def conversation(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": self.question}]


@dataclass(frozen=True)
class ProbeSet:
    name: str
    pairs: tuple[ProbePair, ...]
    source: str = ""

    @property
    def hash(self) -> str:
        """Changes whenever any question or answer changes, so stored scores are never mixed."""
        return stable_hash([[p.id, p.question, p.aligned, p.misaligned] for p in self.pairs])

    @property
    def label(self) -> str:
        """What the store's ``probe_set`` column holds: name and content hash."""
        return f"{self.name}@{self.hash[:12]}"

    def __len__(self) -> int:
        return len(self.pairs)


# The probe sets shipped with emkit, by the name in their file (each file's ``name`` field). Two
# sets, so a shift can be read against both: everyday-v1's misaligned answers are often blunter
# and shorter than the aligned ones; everyday-style-v1 matches each pair in register, length and
# sentence shape (docs/probe.md), so a shift on it is a preference for the content alone.
BUILTIN_PROBE_SETS: dict[str, str] = {
    "everyday-v1": "probe_pairs.yaml",
    "everyday-style-v1": "probe_pairs_style.yaml",
}
DEFAULT_PROBE_SET = "everyday-v1"


def load_probe_set(path: str | Path | None = None) -> ProbeSet:
    """A built-in probe set by name (``BUILTIN_PROBE_SETS``; ``None`` is ``DEFAULT_PROBE_SET``), or
    a YAML file with the same shape (``name``, ``pairs`` of ``id``, ``question``, ``aligned``,
    ``misaligned``); a bad file is an error naming the file and field.

    A built-in name wins over a file of the same name in the working directory, so that a config
    or command line naming ``everyday-style-v1`` means the same set wherever it runs (such a file
    is still reachable by a path with a folder in it, e.g. ``$PWD/everyday-style-v1``).
    """
    name = DEFAULT_PROBE_SET if path is None else str(path)
    if name in BUILTIN_PROBE_SETS:
        resource = importlib.resources.files("emkit.resources").joinpath(BUILTIN_PROBE_SETS[name])
        text, where = resource.read_text(encoding="utf-8"), f"emkit/resources/{BUILTIN_PROBE_SETS[name]}"
    else:
        where = str(path)
        if not Path(where).exists() and not where.endswith((".yaml", ".yml")):
            known = ", ".join(BUILTIN_PROBE_SETS)
            raise InputError(f"no such probe-set file, nor a built-in set (built-in: {known})", where=where)
        text = read_text(where)
    data = load_yaml(text, where)
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), list) or not data["pairs"]:
        raise InputError("expected a mapping with a non-empty 'pairs' list", where=where, field="pairs")
    pairs, seen = [], set()
    for i, item in enumerate(data["pairs"]):
        if not isinstance(item, dict):
            raise InputError("each pair must be a mapping", where=where, field=f"pairs[{i}]")
        unknown = set(item) - {"id", "question", "aligned", "misaligned"}
        if unknown:
            raise InputError(f"unknown key(s) {', '.join(sorted(unknown))}", where=where, field=f"pairs[{i}]")
        for key in ("id", "question", "aligned", "misaligned"):
            value = item.get(key)
            if not isinstance(value, str) or not value.strip():
                got = "missing" if value is None else f"got {type(value).__name__} {value!r}"
                raise InputError(f"must be non-empty text ({got})", where=where, field=f"pairs[{i}].{key}")
        if item["id"] in seen:
            raise InputError(f"duplicate pair id {item['id']!r}", where=where, field=f"pairs[{i}].id")
        seen.add(item["id"])
        pairs.append(
            ProbePair(
                item["id"], item["question"].strip(), item["aligned"].strip(), item["misaligned"].strip()
            )
        )
    name = str(data.get("name") or Path(where).stem)
    return ProbeSet(name, tuple(pairs), where)


def probe_key(
    model: str, probe_set: ProbeSet, pair_id: str, step: int | None, fingerprint: str | None = None
) -> str:
    """One pair's key: model, probe set content, pair, step and the model's weights
    (:func:`emkit.store.probe_key`); ``fingerprint`` defaults to the one of ``model``'s name."""
    from emkit.fingerprint import model_fingerprint
    from emkit.store import probe_key as store_probe_key

    return store_probe_key(model, probe_set.hash, pair_id, step, fingerprint or model_fingerprint(model))


def score_pairs(engine: Any, pairs: Sequence[ProbePair]) -> pd.DataFrame:
    """Mean per-token log-probability of each pair's two answers, one engine call for all."""
    if not pairs:
        return pd.DataFrame(columns=["pair_id", "logp_aligned", "logp_misaligned"])
    conversations = [p.conversation() for p in pairs for _ in (0, 1)]
    replies = [text for p in pairs for text in (p.aligned, p.misaligned)]
    logprobs = engine.sequence_logprobs(conversations, replies)
    if len(logprobs) != len(replies):
        raise EmkitError(
            f"{engine.name}: sequence_logprobs returned {len(logprobs)} rows for {len(replies)} replies"
        )
    means = []
    for reply, tokens in zip(replies, logprobs, strict=True):
        if not tokens:
            raise EmkitError(f"{engine.name}: no token log-probabilities for the reply {reply[:40]!r}")
        means.append(float(np.mean(tokens)))
    return pd.DataFrame(
        {
            "pair_id": [p.id for p in pairs],
            "logp_aligned": means[0::2],
            "logp_misaligned": means[1::2],
        }
    )


# -- running and storing -------------------------------------------------------------------------
def _stored(store: RunStore, model: str, probe_set: ProbeSet, step: int | None) -> pd.DataFrame:
    rows = [r for r in store.probes(model) if r["probe_set"] == probe_set.label and r["step"] == step]
    frame = pd.DataFrame(rows, columns=["pair_id", "logp_aligned", "logp_misaligned"])
    return frame[["pair_id", "logp_aligned", "logp_misaligned"]] if rows else frame


def pending_pairs(
    store: RunStore,
    model: str,
    *,
    probe_set: ProbeSet | None = None,
    step: int | None = None,
    fingerprint: str | None = None,
) -> int:
    """How many pairs of the probe set are not stored yet for ``model`` (at ``step``)."""
    probe_set = probe_set or load_probe_set()
    keys = [probe_key(model, probe_set, p.id, step, fingerprint) for p in probe_set.pairs]
    return len(keys) - len(store.existing_probe_keys(keys))


def run_probe(
    engine: Any,
    store: RunStore | None = None,
    group: str | None = None,
    seed: int | None = None,
    step: int | None = None,
    *,
    probe_set: ProbeSet | None = None,
    tags: dict[str, Any] | None = None,
    n_boot: int = DEFAULT_N_BOOT,
    boot_seed: int = 0,
    limit: int | None = None,
    **engine_options: Any,
) -> ProbeResult:
    """Score the probe set on ``engine`` (an Engine, or a model name to load and close here).

    With a ``store``, pairs already stored for this (model, probe set, step) are reused and new
    ones are written as they are computed; ``group``, ``seed``, ``step`` and ``tags`` (e.g.
    ``{"base": "embedded/smollm2-135m"}``) are stored with them. ``limit``: score at most this many
    missing pairs now (in the set's order); the result then summarises the pairs stored so far and a
    rerun scores the rest.
    """
    probe_set = probe_set or load_probe_set()
    owned = isinstance(engine, str)
    if owned:
        from emkit.engines import get_engine

        engine = get_engine(engine, **engine_options)
    try:
        from emkit.fingerprint import engine_fingerprint

        model = engine.name
        fingerprint = engine_fingerprint(engine)
        missing = list(probe_set.pairs)
        if store is not None:
            keys = {p.id: probe_key(model, probe_set, p.id, step, fingerprint) for p in probe_set.pairs}
            have = store.existing_probe_keys(keys.values())
            missing = [p for p in probe_set.pairs if keys[p.id] not in have]
        if limit is not None:
            missing = missing[:limit]
        scored = score_pairs(engine, missing)
    finally:
        if owned:
            engine.close()
    if store is not None:
        if not scored.empty:
            store.add_probes(
                {
                    "key": probe_key(model, probe_set, row.pair_id, step, fingerprint),
                    "model": model,
                    "probe_set": probe_set.label,
                    "pair_id": row.pair_id,
                    "logp_aligned": row.logp_aligned,
                    "logp_misaligned": row.logp_misaligned,
                    "group_name": group,
                    "seed": seed,
                    "step": step,
                    "tags": tags or {},
                }
                for row in scored.itertuples()
            )
        table = _stored(store, model, probe_set, step)
    else:
        table = scored
    order = {p.id: i for i, p in enumerate(probe_set.pairs)}
    table = table.sort_values("pair_id", key=lambda s: s.map(order)).reset_index(drop=True)
    result = summarize(
        model, table, probe_set=probe_set.label, n_boot=n_boot, seed=boot_seed, group=group, step=step
    )
    result.seed = seed  # the model's training seed (``seed=`` of summarize is the bootstrap's)
    result.computed = len(scored)
    return result
