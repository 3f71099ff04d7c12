"""Labelled responses a direction is computed from: aligned ones and misaligned ones.

Three sources, one shape (:class:`LabelledResponses`), so collection never knows where its data came
from and a stored direction's key can name the data by content:

- ``probe``: the probe pairs (:mod:`emkit.probe`), the aligned and the misaligned answer of each
  question. Paired by construction, so the difference of means holds the question fixed.
- ``files``: two chat JSONL files (:mod:`emkit.data.chat`), the assistant's last turn of each row is
  the response and the turns before it the prompt. The files are read as pairs, line by line: row
  ``i`` of both must ask the same question. Why paired: a difference of means over two unrelated
  sets of prompts mixes "what was asked" into "how it was answered"; a row whose prompt differs is
  one error naming both files' lines.
- ``judged``: the answers of a run with a judge's scores, aligned ``>= aligned_min`` against
  ``< misaligned_max`` among coherent ones (the published rule: 70 and 30). Pooled over the run's
  models, so every model's direction is read from the same responses and two models' directions
  differ by the model alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emkit.engines.abilities import Conversation
from emkit.errors import EmkitError, InputError
from emkit.hashing import stable_hash

if TYPE_CHECKING:
    from emkit.directions.spec import DirectionsSpec
    from emkit.store import RunStore

DEFAULT_COHERENT_MIN = 50.0  # the paper's coherence threshold for a judged answer to count


@dataclass(frozen=True)
class Response:
    """A prompt (the conversation before the answer) and the answer read teacher-forced after it."""

    prompt: tuple[tuple[str, str], ...]  # (role, content) of each turn before the answer
    reply: str

    def conversation(self) -> Conversation:
        return [{"role": role, "content": content} for role, content in self.prompt]


@dataclass(frozen=True)
class LabelledResponses:
    """The aligned and the misaligned responses of one source; ``description`` says which."""

    aligned: tuple[Response, ...]
    misaligned: tuple[Response, ...]
    description: str
    # Row i of both labels answers the same prompt (probe pairs, paired files): a bootstrap then
    # resamples pairs, keeping each pair's two answers together.
    paired: bool = False

    @property
    def hash(self) -> str:
        """Changes with any prompt or answer (part of a stored direction's key)."""
        return stable_hash(
            [[[r.prompt, r.reply] for r in self.aligned], [[r.prompt, r.reply] for r in self.misaligned]]
        )

    def check_enough(self) -> None:
        """Refuse a source a split-half reliability cannot be computed from (2 per label)."""
        if len(self.aligned) < 2 or len(self.misaligned) < 2:
            raise EmkitError(
                f"directions: {self.description} gives {len(self.aligned)} aligned and "
                f"{len(self.misaligned)} misaligned responses; at least 2 of each are needed"
            )


def _response(messages: Sequence[dict[str, str]], reply: str) -> Response:
    return Response(tuple((str(m["role"]), str(m["content"])) for m in messages), reply)


def from_probe_set(name: Any = None) -> LabelledResponses:
    """The probe pairs of a built-in set or a pairs YAML file (``None``: the default set), or of a
    probe set already loaded."""
    from emkit.probe import ProbeSet, load_probe_set

    probe_set = name if isinstance(name, ProbeSet) else load_probe_set(name)
    conversations = [p.conversation() for p in probe_set.pairs]
    return LabelledResponses(
        tuple(_response(c, p.aligned) for c, p in zip(conversations, probe_set.pairs, strict=True)),
        tuple(_response(c, p.misaligned) for c, p in zip(conversations, probe_set.pairs, strict=True)),
        f"probe set {probe_set.label}",
        paired=True,
    )


def _split(row: dict) -> tuple[list[dict[str, str]], str]:
    """A chat row as (prompt turns, the final assistant reply): the chat reader has checked that
    the final turn is the assistant's."""
    messages = row["messages"]
    return [dict(m) for m in messages[:-1]], messages[-1]["content"]


def from_files(aligned_file: str | Path, misaligned_file: str | Path) -> LabelledResponses:
    """Two chat JSONL files read as pairs (row ``i`` of each answers the same prompt)."""
    from emkit.data.chat import load_chat_jsonl

    paths = (Path(aligned_file), Path(misaligned_file))
    rows = [load_chat_jsonl(p) for p in paths]
    if len(rows[0]) != len(rows[1]):
        raise InputError(
            f"{len(rows[0])} rows against {len(rows[1])} in {paths[1]}; the two files must pair "
            "row by row (the same prompts, answered aligned and misaligned)",
            where=str(paths[0]),
        )
    pairs = [[_split(row) for row in file_rows] for file_rows in rows]
    for number, (a, m) in enumerate(zip(*pairs, strict=True), start=1):
        if _response(a[0], "") != _response(m[0], ""):
            raise InputError(
                f"its prompt differs from {paths[1]}:{number}'s; the two files must pair row by row "
                f"(the same prompts, answered aligned and misaligned)",
                where=f"{paths[0]}:{number}",
                field="messages",
            )
    return LabelledResponses(
        tuple(_response(c, r) for c, r in pairs[0]),
        tuple(_response(c, r) for c, r in pairs[1]),
        f"files {paths[0].name} / {paths[1].name}",
        paired=True,
    )


def from_judged(
    store: RunStore,
    aligned_min: float = 70.0,
    misaligned_max: float = 30.0,
    coherent_min: float = DEFAULT_COHERENT_MIN,
    judge: str | None = None,
) -> LabelledResponses:
    """A run's judged answers: aligned ``>= aligned_min``, misaligned ``< misaligned_max``, both
    among coherent ones (``coherent >= coherent_min``), in the store's order."""
    from emkit.analysis import load_run

    frame = load_run(store, judge)
    messages = {row["key"]: row["messages"] for row in store.answers()}
    kept = frame[frame["judged"] & (frame["coherent"] >= coherent_min)]
    chosen = {
        "aligned": kept[kept["aligned"] >= aligned_min],
        "misaligned": kept[kept["aligned"] < misaligned_max],
    }
    out = {}
    for label, rows in chosen.items():
        out[label] = tuple(
            _response(_prompt(messages[key]), answer)
            for key, answer in zip(rows["key"], rows["answer"], strict=True)
            if answer
        )
    return LabelledResponses(
        out["aligned"],
        out["misaligned"],
        f"judged answers of {store.run_dir} (aligned >= {aligned_min:g}, misaligned < "
        f"{misaligned_max:g}, coherent >= {coherent_min:g})",
    )


def _prompt(messages: object) -> list[dict[str, str]]:
    value = json.loads(messages) if isinstance(messages, str) else messages
    return [dict(m) for m in value]  # type: ignore[union-attr]


def load_source(
    spec: DirectionsSpec, store: RunStore | None, base_dir: Path | None = None
) -> LabelledResponses:
    """The labelled responses the ``directions:`` block names (files relative to ``base_dir``)."""
    if spec.source == "probe":
        return from_probe_set(spec.probe_set)
    if spec.source == "files":
        root = base_dir or Path(".")
        aligned, misaligned = (root / str(spec.aligned_file), root / str(spec.misaligned_file))
        return from_files(aligned, misaligned)
    if store is None:
        raise EmkitError("directions: source: judged needs a run store with judged answers")
    return from_judged(store, spec.aligned_min, spec.misaligned_max)
