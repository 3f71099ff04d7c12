"""The paper's external benchmarks, run through inspect_evals on emkit models.

Betley et al. plot each fine-tuned group relative to its base model on TruthfulQA, StrongREJECT,
MMLU and HumanEval. Each is inspect_evals' own task (its prompts, solver and scorer), run on an
emkit engine through the ``emkit/`` provider, with a sample ``limit``.

Offline data. The tasks read their data from a hub (three from the Hugging Face hub, StrongREJECT
from a pinned GitHub CSV). Given a data folder, emkit runs the same task with its loader pointed
at a local file holding the rows in the source's own format (one JSON object per row, or the CSV),
so the task's own ``record_to_sample`` reads them: :data:`BENCHMARKS` says, per benchmark, which
rows to download and the file name to put them under. Without a folder the task downloads as
usual, and a failed download is one line naming what to download and where to put it.

HumanEval runs the model's code: inspect_evals runs it in a docker sandbox; ``sandbox: local``
runs it in a subprocess on this machine (only for models and data you trust).
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

from emkit.errors import EmkitError


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: the inspect_evals task that runs it and where its data comes from."""

    name: str
    task: str  # "module:function" of the inspect_evals task
    loader: str  # the name the task's module reads its data with (replaced for a local file)
    source: str  # what to download, in words
    local_file: str  # its file name in a benchmarks data folder
    metric: str  # the headline metric of the task's first scorer
    higher_is_better: bool = True
    task_args: Mapping[str, Any] = field(default_factory=dict)

    def module(self) -> Any:
        return importlib.import_module(self.task.partition(":")[0])


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "truthfulqa",
            "inspect_evals.truthfulqa.truthfulqa:truthfulqa",
            "hf_dataset",
            "the validation split of the Hugging Face dataset truthfulqa/truthful_qa, config "
            "multiple_choice (revision 741b8276f2d1982aa3d5b832d3ee81ed3b896490)",
            "truthfulqa.jsonl",
            "accuracy",
        ),
        Benchmark(
            "mmlu",
            "inspect_evals.mmlu.mmlu:mmlu_0_shot",
            "hf_dataset",
            "the test split of the Hugging Face dataset cais/mmlu, config all "
            "(revision c30699e8356da336a370243923dbaf21066bb9fe)",
            "mmlu.jsonl",
            "accuracy",
        ),
        Benchmark(
            "humaneval",
            "inspect_evals.humaneval.humaneval:humaneval",
            "hf_dataset",
            "the test split of the Hugging Face dataset openai/openai_humaneval "
            "(revision 7dce6050a7d6d172f3cc5c32aa97f52fa1a2e544)",
            "humaneval.jsonl",
            "accuracy",
        ),
        Benchmark(
            "strongreject",
            "inspect_evals.strong_reject.strong_reject:strong_reject",
            "load_csv_dataset",
            "strongreject_dataset/strongreject_dataset.csv of github.com/alexandrasouly/strongreject "
            "at commit 3432b2d696b428f242bd507df96d80f686571d5e",
            "strongreject.csv",
            "strong_reject_metric",
            higher_is_better=False,
        ),
    )
}


def benchmark(name: str) -> Benchmark:
    entry = BENCHMARKS.get(name)
    if entry is None:
        raise EmkitError(f"unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    return entry


def where_to_put(entry: Benchmark, data_dir: str | Path | None) -> str:
    """The one line that says what to download and where, for a machine without the network."""
    folder = str(data_dir) if data_dir else "DATA_DIR"
    return (
        f"{entry.name}: download {entry.source} and put its rows in {Path(folder) / entry.local_file} "
        f"(the source's own format), then set benchmarks: {{data: {folder}}}"
    )


def local_loader(entry: Benchmark, path: Path) -> Any:
    """A stand-in for the task's loader that reads ``path`` with the same sample converter."""
    from inspect_ai.dataset import csv_dataset, json_dataset

    def load(*args: Any, sample_fields: Any = None, **kwargs: Any) -> Any:
        options = {k: kwargs[k] for k in ("shuffle", "seed", "shuffle_choices") if k in kwargs}
        if entry.local_file.endswith(".csv"):
            return csv_dataset(str(path), sample_fields=sample_fields, **options)
        return json_dataset(str(path), sample_fields=sample_fields, **options)

    return load


@contextlib.contextmanager
def local_data(entry: Benchmark, data_dir: str | Path | None) -> Iterator[None]:
    """While the task is built, its loader reads the local file (nothing at all without a folder)."""
    if data_dir is None:
        yield
        return
    path = Path(data_dir) / entry.local_file
    if not path.is_file():
        raise EmkitError(where_to_put(entry, data_dir))
    with mock.patch.object(entry.module(), entry.loader, local_loader(entry, path)):
        yield


def build_task(
    name: str,
    *,
    data_dir: str | Path | None = None,
    judge: Any = None,
    sandbox: str = "docker",
    task_args: Mapping[str, Any] | None = None,
) -> Any:
    """The inspect task of one benchmark (its data local when ``data_dir`` is given)."""
    entry = benchmark(name)
    function = getattr(entry.module(), entry.task.partition(":")[2])
    args = {**entry.task_args, **dict(task_args or {})}
    if entry.name == "strongreject" and judge is not None:
        args["judge_llm"] = judge
    if entry.name == "humaneval":
        args["sandbox"] = sandbox
    with local_data(entry, data_dir):
        try:
            return function(**args)
        except EmkitError:
            raise
        except Exception as exc:
            if data_dir is not None:
                raise EmkitError(f"{entry.name}: {data_dir}/{entry.local_file}: {exc}") from None
            raise EmkitError(f"{where_to_put(entry, None)} ({type(exc).__name__})") from None


def headline(entry: Benchmark, log: Any) -> dict[str, Any]:
    """The benchmark's numbers from an inspect log: the headline metric, its stderr, the count."""
    metrics: dict[str, float] = {}
    for result in (log.results.scores if log.results else []) or []:
        for metric_name, value in result.metrics.items():
            metrics.setdefault(metric_name, float(value.value))
    score = metrics.get(entry.metric)
    return {
        "benchmark": entry.name,
        "metric": entry.metric,
        "score": None if score is None or not math.isfinite(score) else score,
        "stderr": metrics.get("stderr"),
        "metrics": {k: (v if math.isfinite(v) else None) for k, v in metrics.items()},
        "samples": int(log.results.completed_samples) if log.results else 0,
        "higher_is_better": entry.higher_is_better,
    }
