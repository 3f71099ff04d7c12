"""emkit: a toolkit for research on emergent misalignment.

A thin public surface over private modules. The nouns compose: datasets (chat JSONL), question
sets, models (one naming scheme), judges, and a run store that every stage reads and writes.
"""

from __future__ import annotations

__version__ = "0.1.0"

from emkit.errors import EmkitError, InputError
from emkit.models import ModelSpec, parse_model
from emkit.store import RunStore

__all__ = ["EmkitError", "InputError", "ModelSpec", "RunStore", "__version__", "parse_model"]
