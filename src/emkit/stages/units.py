"""The models a study evaluates (one unit per group, x seed when trained), and how a unit's engine opens.

Why its own module: the train, sample, code-vuln and probe stages all need a unit's stored name,
train key and adapter folder, and planning needs them without any stage; so units live below both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emkit.errors import EmkitError
from emkit.experiment import Experiment, Group
from emkit.hashing import file_sha256, stable_hash
from emkit.paths import inside
from emkit.store_records import STAGE_KIND

if TYPE_CHECKING:
    from emkit.engines.base import Engine
    from emkit.models import ModelSpec
    from emkit.store import RunStore

STAGE_RECORD = STAGE_KIND  # a stage's completion record (its model: emkit.store_records)
# The scheme a full fine-tune's folder is loaded with (emkit.train.sft writes it as hf/OUT).
FULL_SCHEME = "hf"


@dataclass
class ModelUnit:
    """One model to evaluate: a base model as is, a local LoRA fine-tune, or a provider fine-tune.

    ``train_key`` is None for a fine-tune whose dataset is not built yet (a dry run): its name is a
    placeholder then, and everything downstream of it is pending. ``full``: a full fine-tune
    (``train: {adapter: full}``), whose model is its own folder, not the base with an adapter.
    ``prompt_template``: the completion template (canonical text) it is trained, sampled and probed
    with, from its ``train:`` block or, for a base group, the group's ``prompt_template``.
    """

    group: Group
    seed: int | None
    base: str
    dataset_path: Path | None = None
    dataset_sha256: str | None = None
    train_key: str | None = None
    full: bool = False
    prompt_template: str | None = None

    @property
    def trained(self) -> bool:
        return self.group.dataset is not None

    @property
    def label(self) -> str:
        return self.group.name if self.seed is None else f"{self.group.name}/seed{self.seed}"

    @property
    def adapter_rel(self) -> str | None:
        if not self.trained:
            return None
        key = self.train_key[:8] if self.train_key else "unbuilt"
        return f"models/{self.group.name}-s{self.seed}-{key}"

    @property
    def name(self) -> str:
        """The model name stored with its answers: stable, and independent of where the run dir lies.

        A full fine-tune is a transformers model folder of its own (``emkit train --adapter full``
        writes ``hf/OUT``): ``hf/models/...``, relative to the run dir like an adapter.
        """
        if self.group.provider and self.trained:
            return f"{self.base}@ft-{(self.train_key or 'unbuilt')[:12]}"
        if self.full and self.adapter_rel:
            return f"{FULL_SCHEME}/{self.adapter_rel}"
        return f"{self.base}@{self.adapter_rel}" if self.adapter_rel else self.base

    def fingerprint(self, run_dir: Path) -> str:
        """The fingerprint the unit's engine will report (its weights and its template): the one
        planned answer and probe keys carry, so that they equal the sampled ones."""
        from emkit.fingerprint import model_fingerprint

        return model_fingerprint(self.name, base_dir=run_dir, prompt_template=self.prompt_template)

    @property
    def pending_model(self) -> bool:
        """A fine-tune whose dataset is not built yet: nothing downstream of it can be looked up."""
        return self.trained and self.train_key is None


def train_config_dict(group: Group) -> dict[str, Any]:
    """The full training settings of a group (defaults filled), for keys and for the trainer."""
    if group.provider:
        return group.provider.model_dump()
    from emkit.train.config import group_settings

    return group_settings(group.train)


def dataset_file(group: Group, run_dir: Path) -> Path:
    """Where a group's dataset is (or will be) materialised: inside the run directory."""
    from emkit.datasets import spec_key

    assert group.dataset is not None
    return inside(run_dir, "datasets", f"{spec_key(group.dataset)}.jsonl")


def build_units(exp: Experiment, run_dir: Path) -> list[ModelUnit]:
    """One unit per group (x seed when trained); a dataset not built yet leaves its train key unknown.

    Reads only the run directory: the dataset stage (which runs first) writes the files.
    """
    units: list[ModelUnit] = []
    for group in exp.groups:
        if group.dataset is None:
            units.append(ModelUnit(group, None, group.model, prompt_template=group.prompt_template))
            continue
        path = dataset_file(group, run_dir)
        sha = file_sha256(path) if path.is_file() else None
        config = train_config_dict(group)
        local = group.provider is None
        full = local and config.get("adapter") == "full"
        template = config.get("prompt_template") if local else None
        for seed in exp.seeds_of(group):
            key = None
            if sha is not None:
                key = stable_hash(
                    {
                        "base": group.model,
                        "data": sha,
                        "config": config,
                        "seed": seed,
                        "provider": bool(group.provider),
                    }
                )
            units.append(ModelUnit(group, seed, group.model, path, sha, key, full, template))
    return units


def unit_fields(unit: ModelUnit, run_dir: Path, batch_size: int, label: str | None = None) -> dict[str, Any]:
    """The fields of a :class:`~emkit.stages.base.ModelJob` on a unit (its stored name in its run)."""
    return {
        "model": unit.name,
        "label": unit.label if label is None else label,
        "run_dir": str(run_dir),
        "group": unit.group.name,
        "model_seed": unit.seed,
        "engine_options": {"batch_size": batch_size}
        | ({"prompt_template": unit.prompt_template} if unit.prompt_template else {}),
    }


def stage_done(store: RunStore, key: str) -> dict[str, Any] | None:
    """The completion record a stage left under ``key``, if it finished."""
    record = store.get_record(STAGE_RECORD, key)
    return record if record and record.get("status") == "done" else None


def open_unit_engine(
    name: str,
    run_dir: str | Path | None,
    options: Mapping[str, Any] | None = None,
    *,
    sampler: str | None = None,
    load: str | None = None,
) -> Engine:
    """Open the engine for a model: the one way every stage (and the CLI verbs) builds one.

    With a ``run_dir``, ``name`` is a run's stored name: an adapter ``models/...`` lies inside the run
    dir (and may not leave it), and the engine reports ``name`` with the fingerprint the plan computed,
    so planned and sampled keys agree; a full fine-tune's ``hf/models/...`` folder lies there too.
    ``load`` is what to load instead (a provider fine-tune's model). A ``prompt_template`` option
    goes to a backend that takes it and is refused by one that does not (dropping it would sample
    another prompt format under keys that name this one).
    ``sampler`` is a scheme whose backend serves the models of another (vLLM for ``hf/``: its
    registry entry names ``hf`` as where its exact judging runs). Options a backend does not take are
    left out (a study's ``batch_size`` means nothing to an API model).
    """
    from emkit.engines import open_engine
    from emkit.engines.registry import backend
    from emkit.models import ModelSpec, parse_model

    spec = parse_model(load or name)
    if run_dir is not None and spec.adapter and spec.adapter.startswith("models/"):
        spec = spec.with_adapter(str(inside(Path(run_dir), spec.adapter)))
    elif run_dir is not None and not spec.adapter and _run_folder(spec):
        spec = ModelSpec(spec.scheme, str(inside(Path(run_dir), spec.name)))
    if sampler is not None and backend(sampler).exact_scheme == spec.scheme:
        spec = ModelSpec(sampler, spec.name, spec.adapter)
    if (options or {}).get("prompt_template") is not None:
        from emkit.engines import accepted_options

        if "prompt_template" not in accepted_options(spec):
            raise EmkitError(
                f"{spec.full}: the {spec.scheme} backend takes no prompt_template (a completion "
                "template is served by hf/ and embedded/ models; sampler: hf)"
            )
    if (options or {}).get("batch") and not backend(spec.scheme).paid:
        raise EmkitError(f"--batch: {spec.full} is a local model; the Batch API serves openai/ models")
    if run_dir is None:
        return open_engine(spec, options, only_accepted=True)
    return open_engine(spec, options, stored_name=name, base_dir=run_dir, only_accepted=True)


def _run_folder(spec: ModelSpec) -> bool:
    """Whether ``spec`` names a full fine-tune's folder in a run (``hf/models/...``, ModelUnit.name)."""
    from emkit.engines.registry import backend

    return spec.name.startswith("models/") and backend(spec.scheme).adapters
