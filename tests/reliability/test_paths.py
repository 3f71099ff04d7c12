"""Nothing is written outside the run directory, and values that do nothing are refused.

Every name of an experiment file that becomes part of a path (today: a group's name, which names
its adapter folder ``models/<group>-s<seed>-<key>``) is checked at load time against one safe
alphabet, and the error names the file, the line and the field. Behind that, every path a stage
builds under the run directory from names or stored model references goes through
``emkit.paths.inside``, which refuses anything that resolves outside it. Lists that would make a
study do nothing (no groups, no seeds) and repeated entries (two groups of one name would share an
adapter folder) are refused the same way.
"""

from __future__ import annotations

import json

import pytest

from emkit.errors import EmkitError
from reliability.rel_helpers import cli, one_line

pytestmark = pytest.mark.reliability

MODEL = "embedded/smollm2-135m"
BAD_NAMES = [
    "../../x",
    "..",
    ".",
    "/abs/path",
    "a/b",
    "a\\b",
    "",
    "a\x00b",
    "x" * 65,
    "CON",
    "nul.txt",
    "lpt1",
    ".hidden",
    "trailing.",
    "with space",
    "new\nline",
    "$\\alpha$",
    "50%",
    "ok~",
]


def _write(tmp_path, body: str) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(f"name: t\nout: {json.dumps(str(tmp_path / 'run'))}\nprobe: false\n{body}", "utf-8")
    return str(path)


def _listing(root) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize("name", BAD_NAMES, ids=[repr(n)[:20] for n in BAD_NAMES])
def test_unsafe_group_name_is_refused_at_load_with_file_line_field(tmp_path, capsys, name) -> None:
    body = (
        "groups:\n"
        f"  - name: base\n    model: {MODEL}\n"
        f"  - name: {json.dumps(name)}\n    model: {MODEL}\n"
        "    dataset: {builder: risky-advice, n: 4}\n"
    )
    path = _write(tmp_path, body)
    before = _listing(tmp_path)
    for verb in (["run", path, "--dry-run"], ["run", path]):
        code, out, err = cli(verb, capsys)
        line = one_line(err)
        assert code == 2, (code, out, err)
        assert f"{path}:7" in line and "groups.1.name" in line, line
        assert _listing(tmp_path) == before  # nothing built, no run dir, no adapter folder


@pytest.mark.parametrize("name", ["base", "insecure-code", "ic_2", "Qwen2.5-7B", "a", "x" * 64])
def test_safe_names_are_accepted(tmp_path, name) -> None:
    from emkit.experiment import load_experiment

    exp = load_experiment(_write(tmp_path, f"groups:\n  - name: {name}\n    model: {MODEL}\n"))
    assert exp.groups[0].name == name


@pytest.mark.parametrize(
    ("body", "line", "field"),
    [
        ("groups: []\n", 4, "groups"),
        (f"seeds: []\ngroups:\n  - name: a\n    model: {MODEL}\n", 4, "seeds"),
        (
            f"groups:\n  - name: a\n    model: {MODEL}\n    seeds: []\n"
            "    dataset: {builder: risky-advice, n: 4}\n",
            7,
            "groups.0.seeds",
        ),
        (f"groups:\n  - name: a\n    model: {MODEL}\n  - name: a\n    model: {MODEL}\n", 7, "groups.1.name"),
        (
            f"groups:\n  - name: a\n    model: {MODEL}\n  - name: b\n    model: {MODEL}\n"
            f"  - name: a\n    model: {MODEL}\n",
            9,
            "groups.2.name",
        ),
        (f"seeds:\n  - 3\n  - 4\n  - 3\ngroups:\n  - name: a\n    model: {MODEL}\n", 7, "seeds.2"),
        (f"questions: []\ngroups:\n  - name: a\n    model: {MODEL}\n", 4, "questions"),
        (f"triggers: []\ngroups:\n  - name: a\n    model: {MODEL}\n", 4, "triggers"),
        (
            f"samples_per_paraphrase: 0\ngroups:\n  - name: a\n    model: {MODEL}\n",
            4,
            "samples_per_paraphrase",
        ),
        (f"max_new_tokens: 0\ngroups:\n  - name: a\n    model: {MODEL}\n", 4, "max_new_tokens"),
        (
            f"groups:\n  - name: a\n    model: {MODEL}\n    dataset: {{builder: risky-advice, n: 0}}\n",
            7,
            "groups.0.dataset.n",
        ),
    ],
)
def test_values_that_do_nothing_are_refused(tmp_path, capsys, body, line, field) -> None:
    path = _write(tmp_path, body)
    code, out, err = cli(["run", path, "--dry-run"], capsys)
    message = one_line(err)
    assert code == 2, (code, out, err)
    assert f"{path}:{line}:" in message and f"'{field}'" in message, message
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "parts",
    [("..", "x"), ("models", "..", "..", "x"), ("/etc/passwd",), ("models/../../../tmp/evil",)],
)
def test_inside_refuses_paths_that_leave_the_root(tmp_path, parts) -> None:
    from emkit.paths import inside

    with pytest.raises(EmkitError, match="outside the run directory"):
        inside(tmp_path / "run", *parts)
    assert inside(tmp_path / "run", "models", "a-s0-1234") == tmp_path / "run" / "models" / "a-s0-1234"


@pytest.mark.parametrize("adapter", ["models/../../outside", "models/../../../tmp/x", "models/a/../../../y"])
def test_a_stored_model_reference_cannot_point_outside_the_run_dir(tmp_path, adapter) -> None:
    """A model name read back from the store (``base@models/...``) resolves inside the run dir or fails."""
    from emkit.stages.units import open_unit_engine

    with pytest.raises(EmkitError, match="outside the run directory"):
        open_unit_engine(f"{MODEL}@{adapter}", tmp_path / "run", {"batch_size": 1})
