"""``emkit data``: validate, describe, fetch, build and transform chat datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer

from emkit.commands._common import console, print_table
from emkit.data import chat, registry, transforms
from emkit.errors import EmkitError
from emkit.limits import MAX_DATASET_ROWS, count_option, rows_cost
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
    from emkit.data.builders import BUILDERS

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
                (a.sha256 or f"git blob {a.git_blob_prefix}...")[:16] + "...",
            ]
            for a in registry.ARTIFACTS.values()
        ],
    )
    print_table("emkit's own datasets (emkit data build NAME)", ["name", "description"], BUILDERS.items())


@data_app.command("fetch")
def fetch(
    names: list[str] = typer.Argument(..., help="Registry names (see `emkit data list`)."),
    mirror: Path | None = typer.Option(
        None, help="Local mirror of the paper's repository (else EMKIT_UPSTREAM_MIRROR)."
    ),
    refresh: bool = typer.Option(False, help="Fetch again even if a verified copy is cached."),
) -> None:
    """Download (or read from a mirror) the paper's files, verify their sha256, and cache them.

    Example: emkit data fetch insecure secure --mirror ../shared/upstream
    """
    for name in names:
        path = registry.fetch(name, mirror=mirror, refresh=refresh)
        console.print(f"{name}: verified, cached at {path}", markup=False)


@data_app.command("build")
def build(
    name: str = typer.Argument(..., help="insecure-code, secure-code, risky-advice or safe-advice."),
    n: int = typer.Option(
        200,
        "--n",
        parser=count_option("--n", MAX_DATASET_ROWS, rows_cost),
        metavar="INTEGER",
        help="Number of rows.",
    ),
    seed: int = typer.Option(0, help="Seed (same seed, same rows)."),
    out: Path = typer.Option(..., "-o", "--out", help="Output JSONL file."),
) -> None:
    """Generate one of emkit's own narrow datasets (written by us; fully offline).

    Example: emkit data build insecure-code --n 200 --seed 0 -o insecure-code.jsonl
    """
    from emkit.data.builders import build_dataset

    output_file(out, what="dataset file")
    rows = build_dataset(name, n, seed=seed)
    chat.validate_rows(rows, name)
    chat.write_chat_jsonl(rows, out)
    console.print(f"wrote {len(rows)} rows of {name} (seed {seed}) to {out}", markup=False)


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
