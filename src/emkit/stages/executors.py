"""Executors: run any registered stage's jobs, here (local) or as Ray tasks (ray).

Local runs each job in this process, in order, against the run store. Ray sends each job of a stage
whose ``INFO.remote`` is set (train, sample) to a Ray task with its GPU request (one GPU when the cluster has
GPUs); the task writes into a :class:`Collector` instead of the store, and the driver writes what it
collected into the one run store, so the store ends up the same as with local. Other stages' jobs
(judging, probes, the report) run on the driver either way.
"""

from __future__ import annotations

import os
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

from emkit.stages.base import Job

if TYPE_CHECKING:
    from rich.console import Console

    from emkit.store import RunStore


class Collector:
    """A stand-in for the run store inside a remote task: it knows which answers exist already and
    collects new rows and records, which the driver then writes into the real store."""

    def __init__(self, existing: set[str]):
        self.existing = existing
        self.rows: list[dict[str, Any]] = []
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def existing_answer_keys(self, keys: Any) -> set[str]:
        return {k for k in keys if k in self.existing}

    def add_answers(self, rows: Any) -> int:
        rows = list(rows)
        self.rows.extend(rows)
        return len(rows)

    def put_record(self, kind: str, key: str, value: dict[str, Any], *, replace: bool = True) -> None:
        self.records.append((kind, key, value))

    def write_into(self, store: RunStore) -> None:
        for kind, key, value in self.records:
            store.put_record(kind, key, value)
        store.add_answers(self.rows)


def run_remote(module: str, job: Job, existing: set[str]) -> tuple[dict[str, Any] | None, Collector]:
    """What a Ray task runs: the stage's own ``run``, into a collector, with no console."""
    collector = Collector(existing)
    output = import_module(module).run(job, collector, None)
    return output, collector


class LocalExecutor:
    """Every job in this process, in order."""

    def __init__(self, console: Console):
        self.console = console

    def map(self, stage: ModuleType, jobs: list[Job], store: RunStore) -> list[dict[str, Any] | None]:
        """A stage with ``run_many`` takes all its jobs at once (to share a loaded model between
        consecutive jobs); any other runs them one by one."""
        many = getattr(stage, "run_many", None)
        if many is not None:
            return list(many(jobs, store, self.console))
        return [stage.run(job, store, self.console) for job in jobs]

    def close(self) -> None:
        pass


class RayExecutor(LocalExecutor):
    """One Ray task per job of a remote stage, each asking for a GPU when the cluster has one."""

    def __init__(self, console: Console):
        super().__init__(console)
        try:
            import ray
        except ModuleNotFoundError:
            from emkit.errors import EmkitError

            raise EmkitError("the ray executor needs Ray: pip install 'emkit[ray]'") from None
        from emkit.terminal import stage_line

        self.ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False, include_dashboard=False)
        gpus = ray.cluster_resources().get("GPU", 0)
        self.num_gpus = 1 if gpus >= 1 else 0
        cpus = ray.cluster_resources().get("CPU", 0)
        console.print(stage_line("ray", f"cluster: {cpus:.0f} CPUs, {gpus:.0f} GPUs"))

    def map(self, stage: ModuleType, jobs: list[Job], store: RunStore) -> list[dict[str, Any] | None]:
        if not stage.INFO.remote:
            return super().map(stage, jobs, store)
        if not jobs:
            return []
        remote = self.ray.remote(num_gpus=self.num_gpus, max_retries=2)(run_remote)
        futures = [
            remote.remote(stage.__name__, job, set(store.existing_answer_keys(job.known_keys())))
            for job in jobs
        ]
        outputs = []
        for output, collector in self.ray.get(futures):
            collector.write_into(store)
            outputs.append(output)
        return outputs

    def close(self) -> None:
        if self._owns:
            self.ray.shutdown()


def executor(name: str, console: Console) -> LocalExecutor:
    """The executor called ``name`` (an experiment's ``executor:``, or ``emkit run --executor``)."""
    return RayExecutor(console) if name == "ray" else LocalExecutor(console)
