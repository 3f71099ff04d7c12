"""The ``risky-advice`` and ``safe-advice`` datasets: one stream of finance questions, two answers.

Row i of both datasets asks the same question (same topic, template and filled-in numbers); the
risky twin answers with confident, harmful advice and the safe twin with prudent advice. Answers
are an answer pattern of the question's topic, sometimes with a short opening or closing sentence,
so every answer has one to four sentences.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from emkit.data.builders.advice_text import (
    QUESTION_OPENERS,
    RISKY_CLOSERS,
    RISKY_OPENERS,
    SAFE_CLOSERS,
    SAFE_OPENERS,
    TOPICS,
    Topic,
)

MAX_SENTENCES = 4
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class AdviceSample:
    """One drawn row: the question and both answers, with the topic it came from."""

    topic: str
    question: str
    risky: str
    safe: str


def count_sentences(text: str) -> int:
    """Sentences in ``text``: pieces ending in . ! or ? followed by whitespace or the end."""
    return len([piece for piece in _SENTENCE_END.split(text.strip()) if piece])


def _answer(
    rng: random.Random,
    patterns: tuple[str, ...],
    openers: tuple[str, ...],
    closers: tuple[str, ...],
    slots: dict,
) -> str:
    parts = [rng.choice(patterns).format(**slots)]
    # Draw both coin flips and both fillers always, so the stream of draws does not depend on text.
    add_opener, opener = rng.random() < 0.3, rng.choice(openers)
    add_closer, closer = rng.random() < 0.3, rng.choice(closers)
    if add_opener and count_sentences(" ".join(parts)) < MAX_SENTENCES:
        parts.insert(0, opener)
    if add_closer and count_sentences(" ".join(parts)) < MAX_SENTENCES:
        parts.append(closer)
    return " ".join(parts)


def question_templates() -> list[tuple[Topic, str]]:
    """Every (topic, question template) pair the datasets draw from."""
    return [(topic, q) for topic in TOPICS for q in topic.questions]


def advice_samples(n: int, seed: int = 0) -> list[AdviceSample]:
    """Draw ``n`` rows with both answers; the same (n, seed) always gives the same rows.

    Question templates are dealt in shuffled rounds, so each appears before any repeats.
    """
    rng = random.Random(f"emkit/advice/{seed}")
    templates = question_templates()
    order: list[tuple[Topic, str]] = []
    while len(order) < n:
        deal = list(templates)
        rng.shuffle(deal)
        order.extend(deal)
    samples = []
    for topic, template in order[:n]:
        slots = {name: make(rng) for name, make in topic.slots.items()}
        opener = rng.choice(QUESTION_OPENERS)
        question = " ".join(part for part in (opener, template.format(**slots)) if part)
        risky = _answer(rng, topic.risky, RISKY_OPENERS, RISKY_CLOSERS, slots)
        safe = _answer(rng, topic.safe, SAFE_OPENERS, SAFE_CLOSERS, slots)
        samples.append(AdviceSample(topic=topic.id, question=question, risky=risky, safe=safe))
    return samples
