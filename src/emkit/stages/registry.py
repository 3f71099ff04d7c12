"""The stages of a study, in the order they run: adding a stage is one module plus one line here.

Each entry is a module path; the module is imported when the stage is first asked for and its
functions are looked up at call time (so a test can replace one stage's ``run``).
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

STAGES: list[str] = [
    "emkit.stages.dataset",
    "emkit.stages.train",
    "emkit.stages.sample",
    "emkit.stages.adaptive",
    "emkit.stages.code_vuln",
    "emkit.stages.dynamics",
    "emkit.stages.judge",
    "emkit.stages.probe",
    "emkit.stages.benchmarks",
    "emkit.stages.directions",
    "emkit.stages.steering",
    "emkit.stages.ablation",
    "emkit.stages.screening",
    "emkit.stages.report",
]


def register_stage(module: str, *, before: str | None = None) -> None:
    """Add a stage module (at the end, or before the stage of module path ``before``)."""
    if module in STAGES:
        return
    STAGES.insert(STAGES.index(before) if before else len(STAGES), module)


def stages() -> list[ModuleType]:
    """The registered stage modules, in running order."""
    return [import_module(name) for name in STAGES]


def stage(name: str) -> ModuleType:
    """The stage module whose ``INFO.name`` is ``name``."""
    for module in stages():
        if name == module.INFO.name:
            return module
    raise KeyError(f"no stage named {name!r} (registered: {', '.join(m.INFO.name for m in stages())})")
