"""Trainer callbacks: the training log, and hooks that record training dynamics.

Why hooks: the paper (section 4.7) follows misalignment *during* training. A hook is any function
``fn(model, tokenizer, step) -> dict`` (a probe, an eval, a few samples); :class:`DynamicsCallback`
runs it every K optimizer steps (and once before the first step, as step 0) with the model in eval
mode and gradients off, and stores what it returns in the run store (records kind ``dynamics``,
keyed by run and step), so a curve can be drawn later and a rerun of the same run overwrites its own
points instead of duplicating them. :func:`probe_hook` is the ready-made hook: the judge-free probe
of :mod:`emkit.probe` on the model being trained.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from emkit.store import RunStore
from emkit.store_records import DYNAMICS_KIND

Hook = Callable[[Any, Any, int], dict[str, Any]]


class TrainLogCallback(TrainerCallback):
    """Append one JSON line per logging step: step, loss, lr, tokens/s (non-padding tokens).

    Throughput counts only the optimizer steps themselves (from ``on_step_begin`` to ``on_step_end``),
    so time spent in evaluation, checkpoint saving and dynamics hooks does not dilute it; this
    callback must come before the hook callbacks in the trainer's list (their ``on_step_end`` then
    runs after its own).
    """

    def __init__(self, path: str | Path, console: Any = None):
        self.path = Path(path)
        self.console = console
        self.train_seconds = 0.0
        self._step_start: float | None = None
        self._logged_seconds = 0.0
        self._logged_tokens = 0.0
        self.rows: list[dict[str, Any]] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.train_seconds = self._logged_seconds = self._logged_tokens = 0.0
        if state.is_world_process_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("", encoding="utf-8")

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_start is not None:
            self.train_seconds += time.perf_counter() - self._step_start
            self._step_start = None

    @property
    def tokens_per_s(self) -> float:
        """Non-padding tokens per second of optimizer steps, over the whole run so far."""
        return self._logged_tokens / self.train_seconds if self.train_seconds > 0 else 0.0

    def _append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" not in logs or not state.is_world_process_zero:
            return
        tokens = float(logs.get("num_tokens", 0.0))
        elapsed = self.train_seconds - self._logged_seconds
        row = {
            "step": int(state.global_step),
            "epoch": round(float(state.epoch or 0.0), 4),
            "loss": float(logs["loss"]),
            "lr": float(logs.get("learning_rate", 0.0)),
            "grad_norm": _finite(logs.get("grad_norm")),
            "tokens": int(tokens),
            "tokens_per_s": round((tokens - self._logged_tokens) / elapsed, 2) if elapsed > 0 else None,
        }
        self._logged_seconds, self._logged_tokens = self.train_seconds, tokens
        self._append(row)
        if self.console is not None:
            speed = f"{row['tokens_per_s']:.0f} tok/s" if row["tokens_per_s"] else ""
            self.console.print(
                f"step {row['step']:>5}  loss {row['loss']:.4f}  lr {row['lr']:.2e}  {speed}",
                markup=False,
                highlight=False,
            )

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics or "eval_loss" not in metrics or not state.is_world_process_zero:
            return
        row = {"step": int(state.global_step), "eval_loss": float(metrics["eval_loss"])}
        self._append(row)
        if self.console is not None:
            self.console.print(
                f"step {row['step']:>5}  eval loss {row['eval_loss']:.4f}", markup=False, highlight=False
            )


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class DynamicsCallback(TrainerCallback):
    """Run ``hook(model, tokenizer, step)`` at step 0 and every ``every`` steps; store each result.

    Records are keyed ``<run key>:<hook name>:<step>`` (the name defaults to the function's).
    """

    def __init__(
        self,
        hook: Hook,
        every: int,
        *,
        tokenizer: Any,
        store: RunStore | None,
        run_key: str,
        name: str | None = None,
        console: Any = None,
    ):
        if every < 1:
            raise ValueError("every must be >= 1")
        self.hook = hook
        self.every = every
        self.tokenizer = tokenizer
        self.store = store
        self.run_key = run_key
        self.name = name or getattr(hook, "__name__", "hook")
        self.console = console
        self.results: list[dict[str, Any]] = []
        self._done: set[int] = set()

    def _run(self, model: Any, step: int) -> None:
        if step in self._done:
            return
        import torch

        self._done.add(step)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                value = dict(self.hook(model, self.tokenizer, step) or {})
        finally:
            if was_training:
                model.train()
        record = {"run": self.run_key, "hook": self.name, "step": step, **value}
        self.results.append(record)
        if self.store is not None:
            self.store.put_record(DYNAMICS_KIND, f"{self.run_key}:{self.name}:{step:08d}", record)
        if self.console is not None:
            shown = ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in value.items()
                if isinstance(v, (int, float)) and k not in ("step", "seed", "ci_low", "ci_high", "n_pairs")
            )
            self.console.print(f"[dynamics] {self.name} step {step}: {shown}", markup=False, highlight=False)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if state.is_world_process_zero and model is not None:
            self._run(model, int(state.global_step))

    def on_step_end(self, args, state, control, model=None, **kwargs):
        step = int(state.global_step)
        if state.is_world_process_zero and model is not None and step % self.every == 0:
            self._run(model, step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        # The final point, even when the last step is not a multiple of ``every``.
        if state.is_world_process_zero and model is not None:
            self._run(model, int(state.global_step))


def probe_hook(
    store: RunStore | None,
    group: str | None = None,
    seed: int | None = None,
    *,
    model_name: str = "training",
    probe_set: Any = None,
    tags: dict[str, Any] | None = None,
    fingerprint: str | None = None,
) -> Hook:
    """A hook that runs :func:`emkit.probe.run_probe` on the model being trained.

    Probe rows go to the store's ``probes`` table with the step (so ``emkit analyze`` can plot the
    curve); the hook returns the summary (score, CI, win fraction) for the dynamics record.
    ``fingerprint`` identifies the weights in their keys (the trainer passes its run key: the
    weights being trained are not the adapter files on disk, which may be an older run's).
    """

    def probe(model: Any, tokenizer: Any, step: int) -> dict[str, Any]:
        from emkit.engines.hf_backend import HFEngine
        from emkit.probe import run_probe

        engine = HFEngine.from_model(model, tokenizer, model_name, batch_size=8)
        if fingerprint is not None:
            engine.fingerprint = fingerprint
        kwargs: dict[str, Any] = {"tags": tags or {}}
        if probe_set is not None:
            kwargs["probe_set"] = probe_set
        result = run_probe(engine, store=store, group=group, seed=seed, step=step, **kwargs)
        return result.to_dict()

    return probe
