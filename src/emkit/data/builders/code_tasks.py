"""All code task templates: ordinary, small programming requests for the code datasets.

The templates live in two modules by subject; importing them here fills
:data:`~emkit.data.builders.code_task_base.TASKS` in a fixed order (the order is part of what
makes a (n, seed) draw reproducible).
"""

from __future__ import annotations

from emkit.data.builders import code_tasks_system, code_tasks_web
from emkit.data.builders.code_task_base import LOCAL_POOLS, TASKS, CodeTask

TEMPLATE_MODULES = (code_tasks_system, code_tasks_web)

__all__ = ["LOCAL_POOLS", "TASKS", "TEMPLATE_MODULES", "CodeTask"]
