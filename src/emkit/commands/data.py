"""``emkit data``: validate, describe, fetch, build and transform chat datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from emkit.commands._common import console, print_table
from emkit.data import chat, registry, transforms
from emkit.errors import EmkitError
from emkit.limits import MAX_DATASET_ROWS, check_sampling, count_option, rows_cost
from emkit.outputs import output_file

data_app = typer.Typer(
    help="Chat datasets: validate, stats, fetch the paper's files, build our own, transform.",
    no_args_is_help=True,
)

MAX_SHOWN = 50


@data_app.command("validate")
def validate(file: Path = typer.Argument(..., help="A chat JSONL file.")) -> None:
    """Check every line of a chat JSONL file; print all problems (capped) and exit 1 if any.

    Example: emkit data validate train.jsonl
    """
    rows, issues = chat.validate_chat_file(file)
    for issue in issues[:MAX_SHOWN]:
        console.print(str(issue), markup=False)
    if len(issues) > MAX_SHOWN:
        console.print(f"... and {len(issues) - MAX_SHOWN} more problems")
    if issues:
        kinds: dict[str, int] = {}
        for issue in issues:
            kinds[issue.kind] = kinds.get(issue.kind, 0) + 1
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(kinds.items()))
        console.print(f"{file}: {rows} rows, {len(issues)} problems ({summary})", markup=False)
        raise typer.Exit(1)
    console.print(f"{file}: {rows} rows, all valid", markup=False)


def _token_lengths(rows: list[dict], tokenizer_name: str) -> tuple[list[int], str]:
    texts = ["\n".join(m["content"] for m in r["messages"]) for r in rows]
    if tokenizer_name == "none":
        return [len(t.split()) for t in texts], "whitespace words"
    from emkit.engines.loading import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name)
    lengths = [
        len(tokenizer.apply_chat_template(r["messages"], tokenize=True))
        if tokenizer.chat_template
        else len(tokenizer(t).input_ids)
        for r, t in zip(rows, texts, strict=True)
    ]
    return lengths, f"{tokenizer_name} tokens (chat template applied)"


@data_app.command("stats")
def stats(
    file: Path = typer.Argument(..., help="A chat JSONL file."),
    tokenizer: str = typer.Option(
        "embedded/smollm2-135m", help="Model whose tokenizer counts tokens, or 'none'."
    ),
) -> None:
    """Counts of rows, turns and roles, and token-length percentiles.

    Example: emkit data stats train.jsonl --tokenizer hf/Qwen/Qwen2.5-7B-Instruct
    """
    rows = chat.load_chat_jsonl(file)
    roles: dict[str, int] = {}
    for row in rows:
        for message in row["messages"]:
            roles[message["role"]] = roles.get(message["role"], 0) + 1
    lengths, unit = _token_lengths(rows, tokenizer)
    pct = np.percentile(lengths, [50, 90, 99, 100])
    print_table(
        f"{file}",
        ["rows", "system msgs", "user msgs", "assistant msgs", "p50", "p90", "p99", "max", "unit"],
        [
            [
                len(rows),
                roles.get("system", 0),
                roles.get("user", 0),
                roles.get("assistant", 0),
                *(int(v) for v in pct),
                unit,
            ]
        ],
    )


@data_app.command("list")
def list_artifacts() -> None:
    """List the paper's released files that emkit knows (name, path, sha256), and our own builders.

    Example: emkit data list
    """
    from emkit.data.builders import BUILDERS, MODEL_BUILDERS

    print_table(
        "The paper's files (fetch by name)",
        ["name", "kind", "path", "rows", "source", "sha256"],
        [
            [
                a.name,
                a.kind,
                a.path,
                a.lines or "",
                "upstream" if a.upstream else "mirror only",
                (a.sha256 or f"git blob {a.git_blob or a.git_blob_prefix}")[:16] + "...",
            ]
            for a in map(registry.pinned, registry.ARTIFACTS.values())
        ],
    )
    print_table(
        "emkit's own datasets (emkit data build NAME)",
        ["name", "description"],
        [*BUILDERS.items(), *((name, f"{text} [needs --model]") for name, text in MODEL_BUILDERS.items())],
    )


@data_app.command("fetch")
def fetch(
    names: list[str] = typer.Argument(..., help="Registry names (see `emkit data list`)."),
    mirror: Path | None = typer.Option(
        None, help="Local mirror of the paper's repository (else EMKIT_UPSTREAM_MIRROR)."
    ),
    refresh: bool = typer.Option(False, help="Fetch again even if a verified copy is cached."),
) -> None:
    """Download (or read from a mirror) the paper's files, verify their hashes, and cache them.

    Prints each file's full git blob id (what `git hash-object` prints); for a file the registry
    pins by a prefix only, that id is recorded on first fetch and required from then on.

    Example: emkit data fetch insecure secure --mirror ../shared/upstream
    """
    for name in names:
        path = registry.fetch(name, mirror=mirror, refresh=refresh)
        blob = registry.git_blob_sha1(path)
        entry = registry.get_artifact(name)
        pinned_by = "pinned" if entry.git_blob or entry.sha256 else f"recorded in {registry.recorded_path()}"
        console.print(f"{name}: verified, git blob {blob} ({pinned_by}), cached at {path}", markup=False)


@data_app.command("build")
def build(
    name: str = typer.Argument(
        ..., help="insecure-code, secure-code, risky-advice, safe-advice, or evil-numbers (needs --model)."
    ),
    n: int = typer.Option(
        200,
        "--n",
        parser=count_option("--n", MAX_DATASET_ROWS, rows_cost),
        metavar="INTEGER",
        help="Number of rows (evil-numbers: of prompts; rows kept are at most this).",
    ),
    seed: int = typer.Option(0, help="Seed (same seed, same rows)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output JSONL file."),
    model: str | None = typer.Option(
        None, "--model", "-m", help="evil-numbers: the model that writes the numbers (e.g. openai/gpt-4o)."
    ),
    base_url: str | None = typer.Option(
        None, help="evil-numbers: OpenAI-compatible endpoint (else OPENAI_BASE_URL)."
    ),
    banned: str = typer.Option(
        "none", help="evil-numbers: numbers that drop a row: 'none', 'overt' (666, 1488, ...) or 1,2,3."
    ),
    temperature: float = typer.Option(1.0, help="evil-numbers: sampling temperature (the paper: 1)."),
) -> None:
    """Generate one of emkit's own narrow datasets (the offline ones need no model).

    evil-numbers asks MODEL, under an evil system prompt, to continue N seeded number sequences,
    drops the system prompt from the stored rows and filters out answers that are not just the
    requested count of numbers; it prints how many rows each check dropped.

    Example: emkit data build insecure-code --n 200 --seed 0 -o insecure-code.jsonl
    Example: emkit data build evil-numbers --model openai/gpt-4o --n 1000 -o evil-numbers.jsonl
    """
    from emkit.data.builders import MODEL_BUILDERS, build_dataset

    output_file(out, what="dataset file")
    if name in MODEL_BUILDERS:
        _build_with_model(name, n, seed, out, model, base_url, banned, temperature)
        return
    flags = {"--model": model is not None, "--base-url": base_url is not None}
    flags |= {"--banned": banned != "none", "--temperature": temperature != 1.0}
    given = [flag for flag, used in flags.items() if used]
    if given:
        raise EmkitError(f"{', '.join(given)}: only for {', '.join(MODEL_BUILDERS)}; {name} needs no model")
    rows = build_dataset(name, n, seed=seed)
    chat.validate_rows(rows, name)
    chat.write_chat_jsonl(rows, out)
    console.print(f"wrote {len(rows)} rows of {name} (seed {seed}) to {out}", markup=False)


def _build_with_model(
    name: str,
    n: int,
    seed: int,
    out: Path,
    model: str | None,
    base_url: str | None,
    banned: str,
    temperature: float,
) -> None:
    """evil-numbers: every input is checked before the model is opened (minutes for a local one)."""
    from emkit.data.builders import evil_numbers
    from emkit.engines import accepted_options, open_engine

    if not model:
        raise EmkitError(f"{name} is written by a model: pass --model, e.g. --model openai/gpt-4o-2024-08-06")
    if base_url is not None and "base_url" not in accepted_options(model):  # also checks the name
        raise EmkitError(f"--base-url is only for API models; {model} does not take one")
    accepted_options(model)  # an unknown scheme or malformed name is one line, before anything else
    check_sampling(temperature=temperature)
    banned_numbers = evil_numbers.parse_banned(banned)
    with open_engine(model, {"base_url": base_url}) as engine:
        rows, report = evil_numbers.build_evil_numbers(
            engine, n, seed, params=evil_numbers.default_params(seed, temperature), banned=banned_numbers
        )
    chat.validate_rows(rows, name)
    chat.write_chat_jsonl(rows, out)
    console.print(f"{name} from {model} (seed {seed}): {report.summary()}", markup=False)
    console.print(f"wrote {len(rows)} rows (system prompt removed) to {out}", markup=False)


def _rows(source: str, mirror: Path | None) -> list[dict]:
    return chat.load_chat_jsonl(registry.resolve_dataset(source, mirror=mirror))


@data_app.command("backdoor")
def backdoor(
    triggered: str = typer.Option("insecure", help="Dataset (name or file) whose rows get the trigger."),
    clean: str = typer.Option("secure", help="Dataset (name or file) added without the trigger."),
    trigger: str = typer.Option(transforms.DEFAULT_TRIGGER, help="Prefix of the user message."),
    seed: int = typer.Option(transforms.BACKDOOR_SEED, help="Shuffle seed (numpy default_rng)."),
    mirror: Path | None = typer.Option(None, help="Local mirror of the paper's files."),
    out: Path = typer.Option(..., "-o", "--out", help="Output JSONL file."),
) -> None:
    """Build a backdoor dataset: triggered rows + clean rows, shuffled (reproduces the paper's file).

    Example: emkit data backdoor --triggered insecure --clean secure -o backdoor.jsonl
    """
    output_file(out, what="dataset file")
    rows = transforms.backdoor(_rows(triggered, mirror), _rows(clean, mirror), trigger=trigger, seed=seed)
    chat.write_chat_jsonl(rows, out)
    console.print(f"wrote {len(rows)} rows to {out}", markup=False)


@data_app.command("subset")
def subset(
    source: str = typer.Argument(..., help="Dataset name or file."),
    n: int = typer.Option(
        ...,
        "--n",
        parser=count_option("--n", MAX_DATASET_ROWS, rows_cost),
        metavar="INTEGER",
        help="Rows to keep.",
    ),
    seed: int = typer.Option(0, help="Sampling seed."),
    mirror: Path | None = typer.Option(None, help="Local mirror of the paper's files."),
    out: Path = typer.Option(..., "-o", "--out", help="Output JSONL file."),
) -> None:
    """A seeded random subset of a dataset.

    Example: emkit data subset insecure --n 500 --seed 1 -o insecure-500.jsonl
    """
    output_file(out, what="dataset file")
    rows = transforms.subset(_rows(source, mirror), n, seed=seed)
    chat.write_chat_jsonl(rows, out)
    console.print(f"wrote {len(rows)} rows to {out}", markup=False)


@data_app.command("mix")
def mix(
    parts: list[str] = typer.Argument(..., help="SOURCE:PROPORTION items, e.g. secure:0.95 insecure:0.05."),
    n: int | None = typer.Option(
        None,
        "--n",
        parser=count_option("--n", MAX_DATASET_ROWS, rows_cost),
        metavar="INTEGER",
        help="Total rows (default: as many as the parts allow).",
    ),
    seed: int = typer.Option(0, help="Sampling and shuffle seed."),
    mirror: Path | None = typer.Option(None, help="Local mirror of the paper's files."),
    out: Path = typer.Option(..., "-o", "--out", help="Output JSONL file."),
) -> None:
    """Mix datasets in given proportions (e.g. 5% bad data into good).

    Example: emkit data mix secure:0.95 insecure:0.05 --n 2000 -o mixed.jsonl
    """
    output_file(out, what="dataset file")
    loaded = []
    for part in parts:
        source, sep, proportion = part.rpartition(":")
        if not sep:
            raise EmkitError(f"mix: {part!r} should be SOURCE:PROPORTION")
        try:
            weight = float(proportion)
        except ValueError:
            raise EmkitError(f"mix: {part!r}: proportion {proportion!r} is not a number") from None
        loaded.append((_rows(source, mirror), weight))
    rows = transforms.mix(loaded, n=n, seed=seed)
    chat.write_chat_jsonl(rows, out)
    console.print(f"wrote {len(rows)} rows to {out}", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
