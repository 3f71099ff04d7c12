"""``emkit directions steer | ablate | screen`` on tiny random Llamas saved as hf/ models: each
prints its table and stores its records; bad inputs are one line, exit 2."""

from __future__ import annotations

import json

import pytest

from directions_helpers import save_tiny, write_probe_yaml

pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return (
        save_tiny(root / "base"),
        save_tiny(root / "tuned", nudge=0.05),
        write_probe_yaml(root / "probe.yaml"),
    )


def run(args, capsys):
    from emkit.cli import main

    code = main(args)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_steer_ablate_screen(models, tmp_path, capsys):
    from emkit.directions.ablation import ABLATE_KIND
    from emkit.directions.steering import STEER_KIND
    from emkit.store import RunStore

    base, tuned, probe = models
    out = tmp_path / "run"
    code, text = run(
        [
            "directions",
            "steer",
            "-m",
            base,
            "--alphas",
            "-2,0,2",
            "--layers",
            "1",
            "--probe-set",
            str(probe),
            "--out",
            str(out),
            "--json",
            str(tmp_path / "s.json"),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0, text
    assert "shift vs alpha 0" in text and len(json.loads((tmp_path / "s.json").read_text())["points"]) == 3
    code, text = run(
        [
            "directions",
            "ablate",
            "-m",
            tuned,
            "--base",
            base,
            "--probe-set",
            str(probe),
            "--out",
            str(out),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0, text
    assert "share removed by its direction" in text and "10 random directions" in text
    store = RunStore(out)
    assert len(store.records(STEER_KIND)) == 1 and len(store.records(ABLATE_KIND)) == 1
    store.close()
    data = tmp_path / "d.jsonl"
    data.write_text(
        "".join(
            json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
            + "\n"
            for q, a in [("why ?", "harm bad ."), ("help ?", "steal ."), ("good ?", "help good .")]
        )
    )
    code, text = run(
        [
            "directions",
            "screen",
            str(data),
            "-m",
            base,
            "--probe-set",
            str(probe),
            "--layer",
            "1",
            "--max-new-tokens",
            "3",
            "--out",
            str(tmp_path / "scr"),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 0, text
    assert "projection difference" in text
    assert (tmp_path / "scr" / "d.jsonl.screen.jsonl").is_file() and (
        tmp_path / "scr" / "screening.png"
    ).is_file()


def test_bad_inputs_are_one_line(models, tmp_path, capsys):
    base, _, probe = models
    code, text = run(["directions", "steer", "-m", "openai/gpt-4o", "--probe-set", str(probe)], capsys)
    assert code == 2 and "need the model's weights" in text and "embedded/smollm2-135m" in text
    code, text = run(
        ["directions", "steer", "-m", base, "--alphas", "a,b", "--probe-set", str(probe)], capsys
    )
    assert code == 2 and "--alphas" in text
    code, text = run(
        ["directions", "steer", "-m", base, "--layers", "9", "--probe-set", str(probe), "--device", "cpu"],
        capsys,
    )
    assert code == 2 and "out of range; the model has 3 layers" in text
    (tmp_path / "bad.safetensors").write_bytes(b"nope")
    code, text = run(
        [
            "directions",
            "steer",
            "-m",
            base,
            "--directions",
            str(tmp_path / "bad.safetensors"),
            "--probe-set",
            str(probe),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert code == 2 and "bad.safetensors" in text
    assert len(text.strip().splitlines()) == 1
