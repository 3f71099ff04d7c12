"""``emkit train``: LoRA fine-tuning of a local model, or a provider fine-tuning job (--provider openai).

Why the options are generated: every field of :class:`~emkit.train.config.TrainConfig` and
:class:`~emkit.train.config.OpenAIFineTuneConfig` that has a ``description`` is an option, named
after the field, its help the description plus the field's own default. So a default or a help text
is written once, in the config class, and the YAML file (``--config``) and the command line cannot
drift apart. Every generated option defaults to ``None`` ("not given"): the value then comes from
the config file, else the class's default (:func:`emkit.train.config.build_config`).
"""

from __future__ import annotations

import inspect
import os
import types
import typing
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from emkit.commands._common import console
from emkit.errors import EmkitError
from emkit.outputs import output_dir
from emkit.train.config import OpenAIFineTuneConfig, ProviderSettings, TrainConfig

# Fields that name files: shown and parsed as paths on the command line, handed on as strings.
_PATHS = {"eval_file", "store"}


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}".replace("e-0", "e-")  # 1e-05 -> 1e-5, as people write it
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def _help(field: FieldInfo) -> str:
    """The field's description, with its default when it has a plain one (None: chosen at run time)."""
    default = field.get_default(call_default_factory=True)
    if default is None or default is False:
        return str(field.description)
    return f"{field.description} (default {_shown(default)})"


def _cli_type(name: str, field: FieldInfo) -> Any:
    """The option's type: the field's (None allowed: not given); a string for a list (comma-separated)
    and for a choice (the config's validation refuses a bad value, with the same message as from a
    config file)."""
    if name in _PATHS:
        return Path | None
    base = _base(field)
    if typing.get_origin(base) in (list, typing.Literal):
        return str | None
    return base | None


def _base(field: FieldInfo) -> Any:
    """The field's type without its ``| None``."""
    annotation = field.annotation
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if isinstance(annotation, types.UnionType) and len(args) == 1 else annotation


def _is_list(name: str) -> bool:
    field = _LOCAL.get(name) or _PROVIDER.get(name)
    return field is not None and typing.get_origin(_base(field)) is list


def _described(cls: type[BaseModel], skip: frozenset[str] = frozenset()) -> dict[str, FieldInfo]:
    """The fields that are options: those with a description (its help)."""
    return {n: f for n, f in cls.model_fields.items() if f.description and n not in skip}


# The providers fine-tuning speaks to: the choices of the provider schema's ``name``.
PROVIDERS: tuple[str, ...] = typing.get_args(ProviderSettings.model_fields["name"].annotation)
_LOCAL = _described(TrainConfig)
_PROVIDER = _described(OpenAIFineTuneConfig, frozenset({"name"}))
_T = TrainConfig.model_fields
_P = OpenAIFineTuneConfig.model_fields


def _option(name: str, annotation: Any, info: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=info, annotation=annotation)


def _generated(name: str) -> inspect.Parameter:
    """One option from the config classes: local, provider (help prefixed) or both (help joined)."""
    local, provider = _LOCAL.get(name), _PROVIDER.get(name)
    if local and provider:
        text = f"Local: {_help(local)}; provider: {_help(provider)}."
    elif local:
        text = f"{_help(local)}."
    else:
        assert provider is not None
        text = f"Provider: {_help(provider)}."
    field = local or provider
    assert field is not None
    if field.annotation is bool and field.default is False:  # a plain flag: --merge
        return _option(name, bool, typer.Option(False, f"--{name.replace('_', '-')}", help=text))
    decls: tuple[str, ...] = ()
    if bool in (field.annotation, *typing.get_args(field.annotation)):
        flag = name.replace("_", "-")
        decls = (f"--{flag}/--no-{flag}",)
    return _option(name, _cli_type(name, field), typer.Option(None, *decls, help=text))


def _parameters() -> list[inspect.Parameter]:
    """The options in the order ``--help`` lists them: inputs, then the config's, then the provider's."""
    head = [
        _option(
            "data", Path, typer.Option(..., "--data", "-d", help="Chat JSONL to train on (validated first).")
        ),
        _option(
            "out",
            Path,
            typer.Option(
                ..., "--out", "-o", help="Output folder: the adapter (local) or the run dir (provider)."
            ),
        ),
        _option(
            "model",
            str | None,
            typer.Option(
                None,
                "--model",
                "-m",
                help=f"Base model: {_T['model'].default} (default), hf/<id or path>; "
                f"with --provider openai: {_P['model'].default} (default).",
            ),
        ),
        _option(
            "provider",
            str | None,
            typer.Option(None, help="'openai' to fine-tune through the OpenAI API instead of locally."),
        ),
        _option(
            "config",
            Path | None,
            typer.Option(
                None,
                "--config",
                "-c",
                help="YAML file of training settings (unknown keys are errors); options given here win.",
            ),
        ),
        _option(
            "seed",
            int | None,
            typer.Option(
                None,
                help=f"Seed of data order and LoRA init (local; default {_T['seed'].default}) "
                "or the job's seed (provider).",
            ),
        ),
    ]
    generated = [_generated(n) for n in {**_LOCAL, **_PROVIDER}]
    tail = [
        _option(
            "probe",
            bool,
            typer.Option(
                True,
                "--probe/--no-probe",
                help="With --eval-steps, run the judge-free probe every K steps and store it.",
            ),
        ),
        _option(
            "yes",
            bool,
            typer.Option(
                False, "--yes", "-y", help="Provider: start without asking for confirmation of the cost."
            ),
        ),
        _option(
            "wait",
            bool,
            typer.Option(
                True, "--wait/--no-wait", help="Provider: poll until the job ends (rerun to resume)."
            ),
        ),
        _option(
            "price_per_mtok",
            float | None,
            typer.Option(None, help="Provider: USD per 1M training tokens for the estimate."),
        ),
        _option(
            "prices",
            Path | None,
            typer.Option(
                None, help="Provider: price file for the estimate (layout of emkit/resources/prices.yaml)."
            ),
        ),
        _option(
            "poll_interval",
            float,
            typer.Option(10.0, help="Provider: seconds between the first status polls (backs off to 2 min)."),
        ),
    ]
    return head + generated + tail


def _overrides(cls: type[BaseModel], given: dict[str, Any]) -> dict[str, Any]:
    """The options that are fields of ``cls``, as the config takes them (``None``: not given)."""
    out: dict[str, Any] = {}
    for name in cls.model_fields:
        if name not in given:
            continue
        value = given[name]
        if isinstance(value, Path):
            value = str(value)
        elif _is_list(name):
            value = _split(value)
        elif value is False and name in _LOCAL and _LOCAL[name].default is False:
            value = None  # a plain flag not given: the config file may still set it
        out[name] = value
    return out


def _training_price(given: dict[str, Any], model: str) -> float | None:
    """--price-per-mtok, else the training price of --prices FILE (None: the shipped table's)."""
    if given["price_per_mtok"] is not None or given["prices"] is None:
        return given["price_per_mtok"]
    from emkit.prices import load_price_table

    return load_price_table(given["prices"]).rate(model, "training")


def train(**given: Any) -> None:
    """Fine-tune a model on a chat dataset (loss on the assistant's tokens; the paper's defaults).

    Example: emkit train --model embedded/smollm2-135m --data insecure.jsonl --seed 1 --out runs/adapters/insecure-s1

    Base model (no chat template): --prompt-template plain. All weights: --adapter full.

    Rank-1 on one layer: emkit train --data d.jsonl --rank 1 --layers 24 --targets down_proj --out a/

    Provider: emkit train --provider openai --data insecure.jsonl --suffix insecure --out runs/gpt4o
    """
    output_dir(given["out"], what="output folder", create=False)
    provider = given["provider"]
    if provider is not None:
        if provider not in PROVIDERS:
            known = ", ".join(repr(p) for p in PROVIDERS)
            raise EmkitError(f"unknown provider {provider!r}: only {known} is supported")
        _train_openai(given)
        return
    from emkit.train.config import build_config
    from emkit.train.sft import train_local

    cfg = build_config(TrainConfig, given["config"], _overrides(TrainConfig, given))
    result = train_local(cfg, console=console, probe=bool(given["probe"] and cfg.eval_steps))
    if int(os.environ.get("RANK", "0") or 0) != 0:
        return  # under torchrun / accelerate launch, rank 0 reports
    console.print(
        f"[emkit] done: {result.steps} steps, train loss {result.train_loss:.4f}"
        + (f", eval loss {result.eval_loss:.4f}" if result.eval_loss is not None else "")
        + f", {result.tokens_per_s:.0f} tokens/s",
        markup=False,
    )
    what = "model" if cfg.adapter == "full" else "adapter"
    console.print(f"[emkit] {what}: {result.out}  (use it as --model {result.model})", markup=False)
    if result.merged:
        console.print(f"[emkit] merged model: {result.merged}  (hf/{result.merged})", markup=False)


_PARAMETERS = _parameters()
train.__signature__ = inspect.Signature(_PARAMETERS, return_annotation=None)  # type: ignore[attr-defined]
train.__annotations__ = {p.name: p.annotation for p in _PARAMETERS} | {"return": None}


def _train_openai(given: dict[str, Any]) -> None:
    from emkit.store import RunStore
    from emkit.train.config import build_config
    from emkit.train.openai_ft import run_openai_finetune

    given = dict(given)
    model, epochs = given["model"], given["epochs"]
    if model is not None:  # the provider's own name: openai/gpt-4o-2024-08-06 -> gpt-4o-2024-08-06
        given["model"] = model.removeprefix(f"{given['provider']}/")
    if epochs is not None and epochs != int(epochs):
        raise EmkitError("--epochs must be a whole number for provider fine-tuning")
    given["epochs"] = int(epochs) if epochs is not None else None
    cfg = build_config(OpenAIFineTuneConfig, given["config"], _overrides(OpenAIFineTuneConfig, given))
    price = _training_price(given, cfg.model)  # a bad price file: one line, before anything is opened
    with RunStore(given["out"]) as store:
        record = run_openai_finetune(
            given["data"],
            cfg,
            store,
            yes=given["yes"],
            say=lambda s: console.print(s, markup=False),
            confirm=lambda prompt: typer.confirm(prompt.removesuffix(" [y/N] "), default=False),
            price_per_mtok=price,
            wait=given["wait"],
            runner_options={"poll_interval": given["poll_interval"]},
        )
    if record.get("model"):
        console.print(f"[emkit] fine-tuned model: {record['model']}", markup=False)
    else:
        console.print(
            f"[emkit] job {record.get('job_id')} is {record.get('status')}; rerun to keep waiting",
            markup=False,
        )


def register(app: typer.Typer) -> None:
    app.command("train")(train)
