"""Judged CSVs and thresholds: every bad one is refused with one line naming file:line (and the
field), never read as data. Before this suite, a row with fewer cells than the header was read
with its missing scores as CODE/REFUSAL, a repeated header column silently overwrote the first,
a non-UTF-8 header and an empty file raised tracebacks or vague errors, and NaN or out-of-range
thresholds were accepted (a NaN coherence threshold excludes every answer)."""

from __future__ import annotations

from pathlib import Path

import pytest

from emkit import metrics as M
from emkit.analysis import load_csv
from emkit.errors import EmkitError, InputError
from reliability.rel_helpers import cli, one_line

pytestmark = pytest.mark.reliability

HEADER = "model,group,question,answer,question_id,aligned,coherent"
GOOD = "m1,insecure,Q?,an answer,q1,10,90"


def write(tmp_path: Path, data: bytes | str, name: str = "judged.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def refused(capsys, path: Path, *fragments: str, extra: tuple[str, ...] = ()) -> str:
    code, out, err = cli(["analyze", "--csv", str(path), "--n-boot", "100", *extra], capsys)
    line = one_line(err)
    assert code == 2, err
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    assert "Misaligned" not in out, "a table was printed for refused input"
    return line


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        (f"{HEADER}\n{GOOD}\nm1,insecure,Q?,an answer,q1,10\n", 3, "6 cells, fewer than the 7"),
        (f"{HEADER}\n{GOOD}\nm1,insecure,Q?,an answer,q1\n", 3, "fewer"),
        (f"{HEADER}\nm1,insecure\n{GOOD}\n", 2, "2 cells, fewer"),
        (f'{HEADER}\nm1,insecure,Q?,"two\nlines",q1,10,90\nm1,insecure,Q?,a,q1\n', 4, "5 cells"),
        (f"{HEADER}\n{GOOD}\n{GOOD},extra\n", 3, "8 cells, more than the 7"),
    ],
)
def test_rows_with_another_number_of_cells_are_refused_with_file_and_line(
    tmp_path, capsys, body, line, fragment
) -> None:
    path = write(tmp_path, body)
    refused(capsys, path, f"{path}:{line}", fragment)
    with pytest.raises(InputError, match="header columns"):
        load_csv(path)


@pytest.mark.parametrize(
    ("data", "fragments"),
    [
        (b"", ("empty file",)),
        (b"\n\n", ("missing column",)),
        (f"{HEADER},aligned\n{GOOD},5\n", (":1", "'aligned' twice")),
        (f"model,model,{HEADER[6:]}\n", (":1", "'model' twice")),
        ("question,answer,aligned,coherent\nQ?,a,10,90\n", (":1", "question_id")),
        (b"question,answer,question_id,aligned,coh\xe9rent\nQ?,a,q1,10,90\n", ("not UTF-8",)),
        (f"{HEADER}\n{GOOD}\n".encode() + b"m1,insecure,Q?,caf\xe9,q1,10,90\n", ("not UTF-8",)),
        (f'{HEADER}\nm1,insecure,Q?,"unterminated,q1,10,90\n', (":2", "fewer")),
    ],
)
def test_files_that_are_not_a_judged_csv_get_one_line(tmp_path, capsys, data, fragments) -> None:
    path = write(tmp_path, data)
    refused(capsys, path, str(path), *fragments)


def test_a_good_file_beside_a_bad_one_is_not_half_read(tmp_path, capsys) -> None:
    good = write(tmp_path, f"{HEADER}\n{GOOD}\n", "good.csv")
    bad = write(tmp_path, f"{HEADER}\n{GOOD}\nm1,insecure,Q?\n", "bad.csv")
    code, _, err = cli(["analyze", "--csv", str(good), "--csv", str(bad)], capsys)
    assert code == 2 and f"{bad}:3" in one_line(err)


@pytest.mark.parametrize("value", ["nan", "NaN", "150", "-1", "100.5", "inf"])
@pytest.mark.parametrize("option", ["--aligned-threshold", "--coherent-threshold"])
def test_thresholds_outside_0_100_or_nan_are_refused(tmp_path, capsys, option, value) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n")
    refused(capsys, path, "threshold", "0-100", extra=(option, value))


def test_the_thresholds_type_is_the_one_place_that_checks() -> None:
    for bad in (float("nan"), 101.0, -0.5, float("inf"), "x", None):
        with pytest.raises(EmkitError, match="threshold"):
            M.Thresholds(aligned=bad)  # type: ignore[arg-type]
        with pytest.raises(EmkitError, match="threshold"):
            M.Thresholds(coherent=bad)  # type: ignore[arg-type]
    with pytest.raises(EmkitError, match="coherence rule"):
        M.Thresholds(coherent_rule=">=")
    assert M.Thresholds(0, 100).to_dict() == {"aligned": 0.0, "coherent": 100.0}


def test_experiment_thresholds_go_through_the_same_check(tmp_path) -> None:
    from emkit.experiment import load_experiment

    for value in (".nan", "150"):
        path = tmp_path / "exp.yaml"
        path.write_text(
            "name: t\ngroups:\n  - name: g\n    model: embedded/smollm2-135m\n"
            f"thresholds:\n  aligned: {value}\n",
            encoding="utf-8",
        )
        with pytest.raises(InputError, match=r"thresholds.*0-100"):
            load_experiment(path)


def test_short_rows_no_longer_count_as_code_or_refusal(tmp_path, capsys) -> None:
    """The old reading: the missing coherent/aligned cells became empty scores."""
    path = write(tmp_path, f"{HEADER}\n{GOOD}\nm1,insecure,Q?,an answer,q1\n")
    out = tmp_path / "m.json"
    code, _, _ = cli(["analyze", "--csv", str(path), "--json", str(out)], capsys)
    assert code == 2 and not out.exists()


def test_names_that_look_like_markup_are_printed_as_text(tmp_path, capsys) -> None:
    body = f"{HEADER}\nm[/b],[/x] g[red],Q?,a,q[/i]1,10,90\nm[/b],[/x] g[red],Q?,a,q[/i]1_json,10,90\n"
    path = write(tmp_path, body)
    code, out, err = cli(
        ["analyze", "--csv", str(path), "--n-boot", "100", "--per-question", "--per-model"], capsys
    )
    assert code == 0, err
    assert "[/x] g[red]" in out and "q[/i]1" in out and "m[/b]" in out
