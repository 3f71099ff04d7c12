"""Model names: a malformed name, or an adapter that is not one, is one line naming the model string.

The class: ``emkit.models.parse_model`` is the one parser of model names (every verb and config
goes through it), and ``check_adapter`` runs where every engine is made, before any base model is
loaded. Before, ``hf/X@`` silently meant the base model, ``openai/`` was reported as an unknown
scheme, whitespace was stripped in one place and kept in another, and a mistyped adapter path was
found only after the base model had loaded.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from reliability.rel_helpers import cli, make_run_dir, one_line, snapshot, write_questions

pytestmark = pytest.mark.reliability

GOOD_ROW = {"messages": [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Fine."}]}

BAD_NAMES = {
    "hf/Qwen/Qwen2.5-0.5B-Instruct@": "empty adapter",
    "embedded/smollm2-135m@": "empty adapter",
    "vllm/x@": "empty adapter",
    "hf/@runs/a/adapter": "no model before '@'",
    "embedded/unknown": "unknown embedded model",
    "openai/": "no model after 'openai/'",
    "hf/": "no model after 'hf/'",
    "hf/a@b@c": "more than one '@'",
    " hf/gpt2": "whitespace",
    "hf/gpt2 ": "whitespace",
    "hf/my model": "whitespace",
    "embedded/smollm2-135m\t": "whitespace",
}


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path / "run")


def refused(argv: list, capsys, run: Path, *fragments: str) -> str:
    before = snapshot(run)
    code, _, err = cli([str(a) for a in argv], capsys)
    line = one_line(err)
    assert code == 2 and line.startswith("error: "), err
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    gc.collect()
    assert snapshot(run) == before, "the run dir changed"
    return line


@pytest.mark.parametrize("name", sorted(BAD_NAMES))
def test_parse_model_names_the_string(name) -> None:
    from emkit.errors import EmkitError
    from emkit.models import parse_model

    with pytest.raises(EmkitError) as info:
        parse_model(name)
    message = str(info.value)
    assert repr(name) in message and BAD_NAMES[name] in message, message


ON_VERBS = {
    "hf/X@": "empty adapter",
    "hf/@a": "no model before '@'",
    "embedded/unknown": "unknown embedded model",
    "openai/": "no model after 'openai/'",
    "hf/x y": "whitespace",
    " hf/gpt2": "whitespace",
}


@pytest.mark.parametrize("name", sorted(ON_VERBS))
@pytest.mark.parametrize("verb", ["sample", "train", "probe"])
def test_bad_model_name_on_every_verb(verb, name, tmp_path, run, capsys, fast_api) -> None:
    data = tmp_path / "data.jsonl"
    data.write_text(json.dumps(GOOD_ROW) + "\n", encoding="utf-8")
    argv = {
        "sample": ["sample", "--model", name, "-q", write_questions(tmp_path), "--out", run],
        "train": ["train", "--model", name, "--data", data, "--out", run, "--max-steps", "1"],
        "probe": ["probe", "--model", name, "--out", run],
    }[verb]
    refused(argv, capsys, run, repr(name), ON_VERBS[name])


def _adapters(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    missing = tmp_path / "no-such-adapter"
    a_file = tmp_path / "adapter.bin"
    a_file.write_bytes(b"weights")
    empty_dir = tmp_path / "empty-adapter"
    empty_dir.mkdir()
    broken = tmp_path / "broken-adapter"
    broken.mkdir()
    (broken / "adapter_config.json").write_text('{"r": 8, "lora_alpha": NaN}', encoding="utf-8")
    listed = tmp_path / "list-adapter"
    listed.mkdir()
    (listed / "adapter_config.json").write_text("[8]", encoding="utf-8")
    return {
        "missing": (missing, "does not exist"),
        "file": (a_file, "not a LoRA adapter folder"),
        "empty_dir": (empty_dir, "not a LoRA adapter folder"),
        "bad_json": (broken, "NaN"),
        "not_object": (listed, "expected a JSON object"),
    }


@pytest.mark.parametrize("case", ["missing", "file", "empty_dir", "bad_json", "not_object"])
@pytest.mark.parametrize("verb", ["sample", "probe"])
def test_adapter_that_is_not_an_adapter_is_refused_before_loading(case, verb, tmp_path, run, capsys) -> None:
    """Refused before the base model loads: the check runs where every engine is made."""
    import sys

    adapter, fragment = _adapters(tmp_path)[case]
    name = f"embedded/smollm2-135m@{adapter}"
    argv = {
        "sample": ["sample", "--model", name, "-q", write_questions(tmp_path), "--out", run],
        "probe": ["probe", "--model", name, "--out", run],
    }[verb]
    loaded_before = "transformers" in sys.modules
    refused(argv, capsys, run, str(adapter), fragment)
    if not loaded_before:  # nothing heavy was imported to find out
        assert "transformers" not in sys.modules


def test_a_real_adapter_folder_passes_the_check(tmp_path) -> None:
    from emkit.models import check_adapter

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text('{"r": 8, "peft_type": "LORA"}', encoding="utf-8")
    spec = check_adapter(f"hf/gpt2@{folder}")
    assert spec.adapter == str(folder) and check_adapter("openai/gpt-4o").adapter is None
