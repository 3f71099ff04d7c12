"""constraints.txt pins what was tested: every dependency, exact versions, and it is current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
CONSTRAINTS = ROOT / "constraints.txt"


def _pins() -> dict[str, str]:
    pins = {}
    for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins[requirement.name.lower()] = spec.version
    return pins


def test_constraints_pin_the_direct_dependencies_exactly() -> None:
    pins = _pins()
    for name in ("typer", "click", "rich", "pydantic", "transformers", "peft", "trl", "torch", "pytest"):
        assert name in pins, name
    assert "emkit" not in pins
    assert all("+" not in version for version in pins.values()), "a local build tag (torch +cpu) is pinned"


def test_constraints_match_the_venv_the_tests_run_in() -> None:
    """Fails when a dependency was upgraded (or added) without `make constraints`."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "freeze_constraints.py"),
            "--check",
            "--out",
            str(CONSTRAINTS),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_makefile_installs_with_the_constraints() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    installs = [line for line in makefile.splitlines() if "pip install" in line and "TORCH_PIN" in line]
    assert installs and all("-c $(CONSTRAINTS)" in line for line in installs), installs
