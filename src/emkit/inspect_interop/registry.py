"""What inspect_ai loads from emkit's entry point (``[project.entry-points.inspect_ai] emkit``):
the ``emkit/`` model provider and the ``emkit/<question set>`` tasks, registered on import."""

from __future__ import annotations

from emkit.inspect_interop import provider, tasks

__all__ = ["provider", "tasks"]
