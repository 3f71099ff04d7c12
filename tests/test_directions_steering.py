"""Steering on a tiny random Llama: the hooks leave the model bitwise unchanged once removed (even
after an error), alpha 0 changes no logit, a non-zero alpha does, and a sweep stores its curve and
steered answers (under a model name carrying the steering) and resumes from the store."""

from __future__ import annotations

import numpy as np
import pytest

from directions_helpers import tiny_engine, tiny_probe_set
from emkit.errors import EmkitError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from emkit.directions.intervene import directions_from_pairs  # noqa: E402
from emkit.directions.steering import STEER_KIND, SteeredEngine, steered, steering_sweep  # noqa: E402


@pytest.fixture(scope="module")
def engine():
    return tiny_engine()


@pytest.fixture(scope="module")
def directions(engine):
    return directions_from_pairs(engine, tiny_probe_set(), "all")


def logits(engine):
    ids = torch.tensor([[3, 5, 9, 10, 4, 3, 6, 7, 11]])
    with torch.no_grad():
        return engine.torch_model()(ids).logits.clone()


def test_model_is_bitwise_unchanged_after_steering_even_on_error(engine, directions):
    model = engine.torch_model()
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    before = logits(engine)
    with steered(engine, directions, [0, 1], 4.0) as layers:
        assert layers == [0, 1]
        during = logits(engine)
    assert not torch.equal(before, during)
    with pytest.raises(RuntimeError, match="boom"), steered(engine, directions, "all", 8.0):
        raise RuntimeError("boom")
    after = logits(engine)
    assert torch.equal(before, after)
    state = model.state_dict()
    assert state.keys() == before_state.keys()
    assert all(torch.equal(state[k], before_state[k]) for k in state)
    assert all(not block._forward_hooks for block in model.model.layers)


def test_alpha_zero_gives_identical_logits(engine, directions):
    before = logits(engine)
    with steered(engine, directions, "all", 0.0):
        assert torch.equal(logits(engine), before)


def test_added_vector_is_alpha_unit_typical_norm(engine, directions):
    from emkit.directions.activations import collect_means

    conversations, replies = [[{"role": "user", "content": "why ?"}]], ["yes help ."]
    plain = collect_means(engine, conversations, replies, [0, 1]).means
    with steered(engine, directions, [0], 2.5):
        pushed = collect_means(engine, conversations, replies, [0, 1]).means
    expected = 2.5 * directions.unit(0) * directions.typical_norm[0]
    np.testing.assert_allclose(pushed[0, 0] - plain[0, 0], expected, atol=1e-5)
    assert not np.allclose(pushed[0, 1], plain[0, 1])  # later layers see the push


def test_bad_inputs_are_one_line(engine, directions):
    from emkit.directions.vectors import DirectionSet

    wide = DirectionSet((0,), np.ones((1, 32)), np.ones(1), model="other")
    with pytest.raises(EmkitError, match=r"width 32 .* 16 wide"), steered(engine, wide, [0], 1.0):
        pass
    with (
        pytest.raises(EmkitError, match="out of range; the model has 3 layers"),
        steered(engine, directions, [5], 1.0),
    ):
        pass


def test_sweep_stores_its_curve_and_steered_answers_and_resumes(engine, directions, tmp_path, monkeypatch):
    from emkit.questions import Question, QuestionSet
    from emkit.store import RunStore

    store = RunStore(tmp_path / "run")
    questions = QuestionSet(
        "tiny-q", "test", [Question(id="q1", paraphrases=["why ?"], samples_per_paraphrase=1)]
    )
    points = steering_sweep(
        engine,
        directions,
        [-4.0, 0.0, 4.0],
        [1],
        tiny_probe_set(),
        store=store,
        group="base",
        questions=questions,
        samples_per_question=2,
        max_new_tokens=4,
    )
    assert [p.alpha for p in points] == [-4.0, 0.0, 4.0]
    zero = points[1]
    assert zero.shift == 0.0 and zero.ci_low <= zero.score <= zero.ci_high
    assert points[0].score != points[2].score
    (record,) = store.records(STEER_KIND)
    assert record[1]["layers"] == [1] and len(record[1]["points"]) == 3
    models = {row["model"] for row in store.answers()}
    assert len(models) == 3 and all("+steer(alpha=" in m for m in models)
    assert len(store.answers()) == 6
    # A rerun reads every condition from the store: no forward pass at all.
    monkeypatch.setattr(engine, "sequence_logprobs", lambda *a, **k: pytest.fail("recomputed"))
    again = steering_sweep(engine, directions, [-4.0, 0.0, 4.0], [1], tiny_probe_set(), store=store)
    assert [p.score for p in again] == [p.score for p in points]


def test_steered_engine_fingerprint_carries_the_steering(engine, directions):
    a, b = SteeredEngine(engine, directions, [1], 1.0), SteeredEngine(engine, directions, [1], 2.0)
    assert a.fingerprint != b.fingerprint and a.name != b.name
