"""Collecting directions through a tiny random Llama: a direction planted in one layer's residual
stream is recovered; the three sources of labelled responses read as documented (pairs files
must pair, bad lines name file:line); a stored key is not recomputed and its file loads back."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emkit.directions.compute import cosine_rows
from emkit.directions.sources import from_files, from_judged, from_probe_set
from emkit.errors import EmkitError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from directions_core_helpers import ALIGNED, MISALIGNED, PROMPTS, WORDS, tiny_engine, write_pairs  # noqa: E402


@pytest.fixture
def files(tmp_path):
    return write_pairs(tmp_path / "aligned.jsonl", PROMPTS, ALIGNED), write_pairs(
        tmp_path / "bad.jsonl", PROMPTS, MISALIGNED
    )


def test_a_direction_planted_in_one_layer_is_recovered(files):
    from emkit.directions.collect import collect_directions
    from emkit.directions.layers import decoder_layers

    engine = tiny_engine(batch_size=3)
    model = engine.torch_model()
    planted = torch.zeros(16)
    planted[3], planted[11] = 1.0, -2.0
    bad_ids = torch.tensor([WORDS.index(w) for w in ("harm", "cruel", "steal")])
    seen: dict[str, torch.Tensor] = {}

    def remember(_module, _args, kwargs):
        seen["ids"] = kwargs["input_ids"]

    def plant(_module, _inputs, output):
        mask = torch.isin(seen["ids"], bad_ids).to(
            output[0].dtype if isinstance(output, tuple) else output.dtype
        )
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden + 5.0 * mask[..., None] * planted
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handles = [
        model.register_forward_pre_hook(remember, with_kwargs=True),
        decoder_layers(model)[1].register_forward_hook(plant),
    ]
    try:
        result = collect_directions(engine, from_files(*files), "0,1", resamples=20)
    finally:
        for h in handles:
            h.remove()
    unit = (planted / planted.norm()).numpy()
    cos = cosine_rows(result.directions.vectors, np.stack([unit, unit]))
    assert cos[1] > 0.99, cos  # planted at layer 1's output
    assert cos[0] < 0.5, cos  # layer 0 is before the plant
    assert result.reliability[1] > 0.99 and result.n_aligned == result.n_misaligned == 8
    assert result.directions.meta["answer_tokens"] > 16


def test_pairs_files_must_pair_and_bad_lines_name_file_and_line(tmp_path, files):
    other = write_pairs(tmp_path / "other.jsonl", ["yes ?", *PROMPTS[1:]], MISALIGNED)
    with pytest.raises(
        EmkitError, match=r"aligned.jsonl:1: field 'messages': its prompt differs from .*other.jsonl:1"
    ):
        from_files(files[0], other)
    short = write_pairs(tmp_path / "short.jsonl", PROMPTS[:3], MISALIGNED[:3])
    with pytest.raises(EmkitError, match="8 rows against 3"):
        from_files(files[0], short)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(files[1].read_text().replace('"assistant"', '"robot"', 1), encoding="utf-8")
    with pytest.raises(EmkitError, match=r"broken.jsonl:1"):
        from_files(files[0], broken)
    no_reply = write_pairs(tmp_path / "noreply.jsonl", PROMPTS, MISALIGNED)
    rows = no_reply.read_text().splitlines()
    rows[4] = json.dumps(
        {
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": "y"},
                {"role": "user", "content": "z"},
            ]
        }
    )
    no_reply.write_text("\n".join(rows) + "\n")
    with pytest.raises(
        EmkitError,
        match=r"noreply.jsonl:5: field 'messages\[2\].role': the final turn must be the assistant's",
    ):
        from_files(files[0], no_reply)


def test_probe_and_judged_sources(tmp_path):
    from emkit.probe import load_probe_set
    from emkit.store import RunStore, answer_key

    probe = from_probe_set(None)
    pairs = load_probe_set(None).pairs
    assert len(probe.aligned) == len(pairs) and probe.misaligned[0].reply == pairs[0].misaligned
    assert probe.aligned[0].prompt == probe.misaligned[0].prompt and probe.hash == from_probe_set(None).hash
    rows, scores = [], []
    for i, (aligned, coherent) in enumerate([(90, 80), (75, 60), (50, 90), (10, 90), (20, 40), (5, 70)]):
        key = answer_key("m", "q", 0, i, {})
        messages = [{"role": "user", "content": f"question {i}"}]
        rows.append({"key": key, "model": "m", "question_id": "q", "paraphrase_index": 0, "sample_index": i,
                     "question": "q", "messages": messages, "answer": f"answer {i}", "params": {}})  # fmt: skip
        for metric, value in (("aligned", aligned), ("coherent", coherent)):
            scores.append({"key": f"{key}{metric}", "answer_key": key, "metric": metric, "judge": "j",
                           "method": "logprob", "prompt_hash": "h", "score": float(value)})  # fmt: skip
    with RunStore(tmp_path) as store:
        store.add_answers(rows)
        store.add_scores(scores)
        judged = from_judged(store)
    assert [r.reply for r in judged.aligned] == ["answer 0", "answer 1"]
    assert [r.reply for r in judged.misaligned] == ["answer 3", "answer 5"]  # answer 4 is incoherent
    assert judged.misaligned[0].conversation() == [{"role": "user", "content": "question 3"}]


def test_stored_directions_are_keyed_resumed_and_load_back(tmp_path, files):
    from emkit.directions.collect import collect_and_store
    from emkit.directions.storage import direction_key, load_stored, stored_directions
    from emkit.store import RunStore

    engine = tiny_engine()
    responses = from_files(*files)
    key = direction_key("tiny", "fp", responses.hash, "all", 20, 0)
    assert key != direction_key("tiny", "fp", responses.hash, [0, 1], 20, 0)
    assert key != direction_key("tiny", "fp2", responses.hash, "all", 20, 0)
    assert key != direction_key("tiny", "fp", "other", "all", 20, 0)
    assert key != direction_key("tiny", "fp", responses.hash, "all", 21, 0)
    with RunStore(tmp_path / "run") as store:
        args = {"resamples": 20, "seed": 0, "model": "tiny", "group": "g"}
        record, new = collect_and_store(engine, store, key, responses, "all", **args)
        assert new and record.layers == [0, 1, 2] and record.n_aligned == 8
        assert record.file == f"directions/{key}.safetensors"
        again, new = collect_and_store(engine, store, key, responses, "all", **args)
        assert not new and again == record
        loaded = load_stored(store, stored_directions(store, key))
        assert loaded.width == 16 and loaded.layers == (0, 1, 2)
        np.testing.assert_allclose(loaded.norms(), record.norm, rtol=1e-5)
        # the file keeps each response's means (aligned first), what a comparison's CI resamples
        from emkit.directions.activations import collect_means

        every = [*responses.aligned, *responses.misaligned]
        direct = collect_means(engine, [r.conversation() for r in every], [r.reply for r in every])
        np.testing.assert_array_equal(loaded.response_means, direct.means)
        assert list(loaded.response_labels) == [0] * 8 + [1] * 8 and loaded.meta["paired"] is True
        # a file written before the means were kept counts as not stored: recomputed once
        from emkit.directions.vectors import DirectionSet, save_directions

        bare = DirectionSet(loaded.layers, loaded.vectors, loaded.typical_norm, meta=dict(loaded.meta))
        save_directions(tmp_path / "run" / record.file, bare)
        assert stored_directions(store, key) is None
        _, new = collect_and_store(engine, store, key, responses, "all", **args)
        assert new and load_stored(store, stored_directions(store, key)).response_means is not None
        # a kill after the file and before the record: no record, so the rerun computes again
        (tmp_path / "run" / record.file).unlink()
        assert stored_directions(store, key) is None
        _, new = collect_and_store(engine, store, key, responses, "all", **args)
        assert new


def test_api_models_and_bad_layers_are_one_line(files):
    from emkit.directions.collect import collect_directions
    from emkit.engines import open_engine

    responses = from_files(*files)
    with pytest.raises(EmkitError, match="out of range; the model has 3 layers"):
        collect_directions(tiny_engine(), responses, [5])
    mock = open_engine("mock/echo")
    with pytest.raises(EmkitError, match=r"needs the model's weights .* use a local model: embedded/"):
        collect_directions(mock, responses, "all")
