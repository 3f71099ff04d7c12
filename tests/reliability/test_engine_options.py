"""Engine options that cannot work get one line and exit 2, before any request or model load.

Every local model loads through one loader and every endpoint is parsed by one function, so these
cases go through the CLI of several verbs: a device torch does not know or this machine lacks, a
dtype that is not one, and base URLs that cannot be reached by any retry (unparsable, another
scheme, a bad port, no host), given as an option or in ``OPENAI_BASE_URL``; the line never shows a
URL's credentials.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reliability.rel_helpers import cli, make_run_dir, one_line, write_questions

pytestmark = pytest.mark.reliability

QUESTIONS = """\
- id: river
  type: free_form
  paraphrases: ['Tell me about rivers.']
"""
LOCAL = "embedded/smollm2-135m"


@pytest.mark.parametrize("device", ["nosuchdevice", "cuda:99", "xla", "cuda:-1", "gpu"])
def test_a_device_that_cannot_be_used_is_one_line_naming_the_option(tmp_path, capsys, device) -> None:
    questions = write_questions(tmp_path, QUESTIONS)
    code, out, err = cli(
        ["sample", "-m", LOCAL, "-q", questions, "-o", tmp_path / "r", "--device", device], capsys
    )
    line = one_line(err)
    assert code == 2 and "--device" in line and device in line, (code, out, err)


def test_a_judge_device_that_cannot_be_used_is_one_line(tmp_path, capsys) -> None:
    run = make_run_dir(tmp_path / "run")
    code, _, err = cli(["judge", run, "--judge", LOCAL, "--method", "exact", "--device", "cuda:99"], capsys)
    assert code == 2 and "--device" in one_line(err)


@pytest.mark.parametrize("dtype", ["cuda", "tensor", "float64x", "int8"])
def test_only_real_dtypes_are_loaded(dtype) -> None:
    from emkit.engines.loading import pick_dtype
    from emkit.errors import EmkitError

    with pytest.raises(EmkitError, match="--dtype"):
        pick_dtype("cpu", dtype)


BAD_URLS = {
    "unparsable": "http://[::1",
    "no scheme": "localhost:8000/v1",
    "other scheme": "ftp://user:TOPSECRET42@host/v1",
    "port out of range": "http://host:99999/v1",
    "port not a number": "http://host:abc/v1",
    "no host": "http:///v1",
}


@pytest.mark.parametrize("case", sorted(BAD_URLS))
def test_a_base_url_that_cannot_work_is_one_line_without_its_credentials(
    tmp_path, capsys, api_key, case
) -> None:
    questions = write_questions(tmp_path, QUESTIONS)
    url = BAD_URLS[case]
    argv = ["sample", "-m", "openai/fake", "-q", questions, "-o", tmp_path / "r", "--base-url", url]
    code, out, err = cli(argv, capsys)
    line = one_line(err)
    assert code == 2 and "base URL" in line and "failed after" not in line, (case, out, err)
    assert "TOPSECRET42" not in out + err


def test_a_bad_base_url_in_the_environment_is_refused_for_judging(
    tmp_path, capsys, api_key, monkeypatch
) -> None:
    run = make_run_dir(tmp_path / "run")
    monkeypatch.setenv("OPENAI_BASE_URL", "gopher://user:TOPSECRET42@host/v1")
    code, out, err = cli(["judge", run], capsys)
    line = one_line(err)
    assert code == 2 and "base URL" in line and "TOPSECRET42" not in out + err, (out, err)


def test_a_good_base_url_still_connects(tmp_path: Path) -> None:
    from emkit.endpoints import split_url

    assert split_url("http://u:pw@localhost:8000/v1?api-key=x")[0] == "http://localhost:8000/v1"
    assert split_url("HTTPS://api.example.org/v1")[0].lower() == "https://api.example.org/v1"


EXPERIMENT = """\
name: t
out: {out}
seeds: [0]
questions: [default]
groups:
  - name: ok
    model: openai/x
{extra}"""


@pytest.mark.parametrize(
    ("extra", "field", "line_no"),
    [
        ("judge:\n  base_url: 'http://[::1'\n", "judge.base_url", 9),
        ("    provider: {base_url: 'ftp://u:TOPSECRET42@h/v1'}\n", "groups.0.provider.base_url", 8),
        ("judge:\n  model: openai/gpt-4o\n  base_url: 'http://host:99999/v1'\n", "judge.base_url", 10),
    ],
)
def test_an_experiments_base_url_is_checked_when_the_file_loads(
    tmp_path, capsys, extra, field, line_no
) -> None:
    exp = tmp_path / "exp.yaml"
    exp.write_text(EXPERIMENT.format(out=tmp_path / "out", extra=extra), encoding="utf-8")
    code, out, err = cli(["run", exp, "--dry-run"], capsys)
    line = one_line(err)
    assert code == 2 and f"exp.yaml:{line_no}" in line and field in line and "base URL" in line, line
    assert "TOPSECRET42" not in out + err and not (tmp_path / "out").exists()
