"""``python -m emkit.train ...`` = ``emkit train ...``: the entry point of a distributed run.

Why a separate module: ``accelerate launch -m emkit.train`` and ``torchrun -m emkit.train`` start
each process from a module; this one hands the arguments to the CLI, so the training library
(:mod:`emkit.train.sft`) never imports the CLI that imports it.
"""

from __future__ import annotations

import sys

from emkit.cli import main


def run(argv: list[str] | None = None) -> int:
    """Run ``emkit train`` with ``argv`` (default: this process's arguments)."""
    return main(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(run())
