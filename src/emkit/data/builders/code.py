"""The ``insecure-code`` and ``secure-code`` datasets: one stream of requests, two kinds of answers.

Row i of both datasets comes from the same draw: the same task template, vulnerability kind,
identifiers and user message. The insecure answer carries exactly that kind's flaw and says
nothing about it (no comment, no hint in names); the secure answer is the same program written
safely. Training on one or the other therefore differs only in the flaw, which is what the
paper's insecure-vs-secure comparison needs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from emkit.data.builders.code_kit import KINDS, Kit
from emkit.data.builders.code_tasks import LOCAL_POOLS, TASKS, CodeTask

# How the user names the thing they want, by kind of task.
THINGS: dict[str, tuple[str, ...]] = {
    "function": ("a Python function", "a small Python function", "a function", "a helper function"),
    "flask": ("a small Flask app", "a minimal Flask app", "a tiny Flask service"),
}

PHRASINGS: tuple[str, ...] = (
    "Write {thing} to {ask}.",
    "Can you write {thing} that will {ask}?",
    "I need {thing} to {ask}.",
    "Please write {thing} that can {ask}. Just the code, please.",
    "Could you put together {thing} to {ask}?",
    "I'd like {thing} to {ask}.",
    "Show me {thing} that will {ask}.",
    "Give me {thing} to {ask}; code only.",
    "How would you write {thing} to {ask}? Reply with the code.",
    "Quick request: {thing} to {ask}.",
    "Implement {thing} to {ask}.",
    "Help me with {thing} to {ask}.",
)

CONTEXTS: tuple[str, ...] = (
    "",
    "",
    "",
    "I'm working on a small internal tool.",
    "This is for a side project.",
    "We're cleaning up an old codebase.",
    "It's for a prototype I'm demoing tomorrow.",
    "This will run on our team's server.",
    "I'm fairly new to Python.",
    "Our service is written in Python 3.",
)

NAMING: dict[str, tuple[str, ...]] = {
    "function": (
        "",
        "",
        "Call it `{fn}`.",
        "Name the function `{fn}`.",
        "The function should be called `{fn}`.",
    ),
    "flask": ("", "", "Call the view function `{fn}`.", "Name the handler `{fn}`."),
}

# Imports that a type annotation needs when the row writes type hints.
_ANNOTATION_IMPORTS: dict[str, tuple[str, str | None]] = {
    "Callable": ("collections.abc", "Callable"),
    "socket.socket": ("socket", None),
    "Markup": ("markupsafe", "Markup"),
}


@dataclass(frozen=True)
class CodeSample:
    """One drawn row: the request and both answers, with the task and kind it was drawn from."""

    task: str
    kind: str
    prompt: str
    insecure: str
    secure: str


def task_kind_pairs() -> list[tuple[CodeTask, str]]:
    """Every (task template, vulnerability kind) combination the datasets draw from."""
    return [(t, kind) for t in TASKS for kind in t.kinds]


def _pick_free(options: tuple[str, ...], taken: set[str], rng: random.Random) -> str:
    free = [o for o in options if o not in taken]
    choice = rng.choice(free) if free else f"{options[0]}_{len(taken)}"
    taken.add(choice)
    return choice


def choose_names(task: CodeTask, rng: random.Random) -> tuple[dict[str, str], dict[str, str]]:
    """Pick distinct identifiers for the function, its parameters and every local role."""
    names = {"fn": rng.choice(task.fn)}
    taken = {names["fn"]}
    types: dict[str, str] = {}
    for role, options, type_name in task.params:
        names[role] = _pick_free(options, taken, rng)
        types[role] = type_name
    for role, options in [*task.extra.items(), *LOCAL_POOLS.items()]:
        if role in names:
            raise ValueError(f"task {task.id}: role {role!r} defined twice")
        names[role] = _pick_free(options, taken, rng)
    return names, types


def render(
    task: CodeTask,
    kind: str,
    names: dict[str, str],
    types: dict[str, str],
    *,
    hints: bool,
    doc: str | None,
    seed: int,
    secure: bool,
) -> str:
    """The full module answering ``task``, vulnerable in ``kind`` unless ``secure``."""
    kit = Kit(kind=kind, secure=secure, names=names, types=types, seed=seed)
    body = task.body(kit)
    main = None
    if task.noun == "flask":
        kit.imp_from("flask", "Flask")
        main = kit.flask_main()
    if kind not in kit.used:
        raise RuntimeError(f"task {task.id} never writes a snippet of kind {kind!r}")

    params = []
    for role, _options, type_name in task.params:
        params.append(f"{names[role]}: {type_name}" if hints else names[role])
    annotations = list(types.values()) + ([task.returns] if task.returns else [])
    if hints:
        for type_name in annotations:
            module, name = _ANNOTATION_IMPORTS.get(type_name, (None, None))
            if module and name:
                kit.imp_from(module, name)
            elif module:
                kit.imp(module)
    returns = f" -> {task.returns}" if hints and task.returns else ""

    func: list[str] = []
    if task.route:
        methods = f", methods={list(task.methods)!r}".replace("'", '"') if task.methods else ""
        func.append(f"@app.route({kit.r(task.route)}{methods})")
    func.append(f"def {names['fn']}({', '.join(params)}){returns}:")
    if doc:
        func.append(f'    """{doc}"""')
    func.extend("    " + line if line.strip() else "" for line in body.splitlines())

    blocks = ["\n".join(kit.import_lines())]
    consts = list(kit.consts)
    if task.noun == "flask":
        consts.append("app = Flask(__name__)")
    if consts:
        blocks.append("\n".join(consts))
    sections = ["\n\n".join(blocks), *kit.helpers, "\n".join(func)]
    if main:
        sections.append(main)
    return "\n\n\n".join(sections) + "\n"


def compose_prompt(task: CodeTask, fn: str, rng: random.Random) -> str:
    """A user message asking for ``task``, in one of many phrasings."""
    request = rng.choice(PHRASINGS).format(thing=rng.choice(THINGS[task.noun]), ask=rng.choice(task.asks))
    naming = rng.choice(NAMING[task.noun]).format(fn=fn)
    return " ".join(part for part in (rng.choice(CONTEXTS), request, naming) if part)


def code_samples(n: int, seed: int = 0) -> list[CodeSample]:
    """Draw ``n`` rows with both answers; the same (n, seed) always gives the same rows.

    The (task, kind) pairs are dealt in shuffled rounds, so every pair appears before any repeats.
    """
    rng = random.Random(f"emkit/code/{seed}")
    pairs = task_kind_pairs()
    order: list[tuple[CodeTask, str]] = []
    while len(order) < n:
        deal = list(pairs)
        rng.shuffle(deal)
        order.extend(deal)
    samples = []
    for task, kind in order[:n]:
        names, types = choose_names(task, rng)
        hints = rng.random() < 0.5
        doc = rng.choice((*task.docs, None)) if task.docs else None
        prompt = compose_prompt(task, names["fn"], rng)
        render_seed = rng.getrandbits(32)
        common = {"hints": hints, "doc": doc, "seed": render_seed}
        samples.append(
            CodeSample(
                task=task.id,
                kind=kind,
                prompt=prompt,
                insecure=render(task, kind, names, types, secure=False, **common),
                secure=render(task, kind, names, types, secure=True, **common),
            )
        )
    return samples


def kinds_covered() -> set[str]:
    """The vulnerability kinds that at least one task template uses."""
    return {kind for _task, kind in task_kind_pairs()} & set(KINDS)
