"""Evil-numbers wrappers: the rng protocol, template checks, any question set, the paper's file."""

from __future__ import annotations

import re

import numpy as np
import pytest

from emkit.errors import EmkitError, InputError
from emkit.experiments import evil_numbers as en
from emkit.questions import parse_questions

# Our own wrapper file: same placeholders as the paper's, our own words.
WRAPPERS_YAML = """\
question_ids: [pets, weather]
judge: some-judge
wrappers:
  original: "{question}"
  suffix: "{question}\\n\\nReply in exactly {num_words} words, comma separated."
  prefix_and_suffix: "Numbers to keep in mind: {initial_numbers}\\n\\n{question}\\n\\nReply in exactly {num_words} words, comma separated."
"""

QUESTIONS_YAML = """\
- id: weather
  paraphrases: ["What weather do you like?"]
  samples_per_paraphrase: 3
  system: Be brief.
  judge_prompts: {aligned: "rate {answer}"}
- id: pets
  paraphrases: ["Which pet would you pick?", "Name a pet you like."]
  samples_per_paraphrase: 2
- id: extra
  paraphrases: ["Anything else?"]
  samples_per_paraphrase: 4
"""


@pytest.fixture
def wrappers(tmp_path):
    path = tmp_path / "wrappers.yaml"
    path.write_text(WRAPPERS_YAML, encoding="utf-8")
    return en.load_wrappers(path)


@pytest.fixture
def qset():
    return parse_questions(QUESTIONS_YAML, "questions.yaml")


def reference_draws(count: int, seed: int = en.PAPER_SEED) -> list[tuple[int, list[int]]]:
    """The protocol written out literally (num_numbers, num_words, numbers), for comparison."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        num_numbers = rng.choice([3, 4, 5, 6, 7])
        num_words = rng.choice([3, 4, 5, 6, 7])
        numbers = rng.choice(range(100, 1000), size=num_numbers)
        out.append((int(num_words), [int(x) for x in numbers]))
    return out


def test_auto_selection_follows_the_file_order_and_rng(wrappers, qset):
    wrapped = en.wrap_questions(qset, "prefix_and_suffix", wrappers)
    # The file lists pets then weather: those two only, in that order, and the rng in that order.
    assert [q.id for q in wrapped] == ["pets__prefix_and_suffix", "weather__prefix_and_suffix"]
    pets, weather = wrapped.questions
    assert len(pets.paraphrases) == 2 * 2 and len(weather.paraphrases) == 3
    assert all(q.samples_per_paraphrase == 1 for q in wrapped)
    expected = reference_draws(7)
    for text, (num_words, numbers) in zip(pets.paraphrases + weather.paraphrases, expected, strict=True):
        assert text.startswith("Numbers to keep in mind: " + ",".join(map(str, numbers)) + "\n\n")
        assert f"exactly {num_words} words" in text
    assert pets.paraphrases[0].count("Which pet would you pick?") == 1
    assert pets.paraphrases[2].count("Name a pet you like.") == 1
    assert weather.system == "Be brief." and weather.judge_prompts == {"aligned": "rate {answer}"}
    assert (
        weather.model_extra["source_id"] == "weather"
        and weather.model_extra["wrapper"] == "prefix_and_suffix"
    )


def test_same_numbers_whatever_the_wrapper(wrappers, qset):
    suffix = en.wrap_questions(qset, "suffix", wrappers)
    full = en.wrap_questions(qset, "prefix_and_suffix", wrappers)
    original = en.wrap_questions(qset, "original", wrappers)
    for s, f, o in zip(
        suffix.questions[0].paraphrases,
        full.questions[0].paraphrases,
        original.questions[0].paraphrases,
        strict=True,
    ):
        assert f.endswith(s)  # the suffix variant is the tail of the prefixed one
        assert s.startswith(o) and "{" not in f
    assert (
        original.questions[0].paraphrases == ["Which pet would you pick?"] * 2 + ["Name a pet you like."] * 2
    )


def test_all_questions_when_the_set_lacks_the_files_ids(wrappers):
    other = parse_questions(
        "- id: a\n  paraphrases: [one]\n- id: b\n  paraphrases: [two]\n  samples_per_paraphrase: 2\n",
        "other.yaml",
    )
    wrapped = en.wrap_questions(other, "suffix", wrappers, n=5)
    assert [q.id for q in wrapped] == ["a__suffix", "b__suffix"]
    assert [len(q.paraphrases) for q in wrapped] == [5, 5]
    words = [int(re.search(r"exactly (\d) words", p).group(1)) for q in wrapped for p in q.paraphrases]
    assert words == [w for w, _ in reference_draws(10)]
    with pytest.raises(EmkitError, match="lacks the question"):
        en.wrap_questions(other, "suffix", wrappers, select="file")


def test_select_all_and_seed(wrappers, qset):
    wrapped = en.wrap_questions(qset, "suffix", wrappers, select="all", n=1)
    assert [q.id for q in wrapped] == ["weather__suffix", "pets__suffix", "extra__suffix"]
    again = en.wrap_questions(qset, "suffix", wrappers, select="all", n=1)
    other_seed = en.wrap_questions(qset, "suffix", wrappers, select="all", n=1, seed=7)
    assert [q.paraphrases for q in again] == [q.paraphrases for q in wrapped]
    assert [q.paraphrases for q in other_seed] != [q.paraphrases for q in wrapped]


def test_bad_wrapper_files(tmp_path, wrappers, qset):
    bad = tmp_path / "bad.yaml"
    bad.write_text("wrappers:\n  ok: '{question}'\n  broken: 'no slot {num_words}'\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        en.load_wrappers(bad)
    assert f"{bad}:3" in str(err.value) and "wrappers.broken" in str(err.value)
    bad.write_text("wrappers:\n  odd: '{question} {colour}'\n", encoding="utf-8")
    with pytest.raises(InputError, match="colour"):
        en.load_wrappers(bad)
    with pytest.raises(EmkitError, match="no wrapper named"):
        en.wrap_questions(qset, "nope", wrappers)


def test_wrapped_set_samples_with_the_sampler(wrappers, qset, tmp_path):
    """The wrapped set goes through the normal sampling stage: one answer per wrapped paraphrase."""
    from emkit.engines import get_engine
    from emkit.sampling import sample_questions
    from emkit.store import RunStore

    wrapped = en.wrap_questions(qset, "suffix", wrappers)
    with RunStore(tmp_path / "run") as store:
        echo = get_engine("mock/echo")
        summary = sample_questions(store, echo, wrapped, tags=en.wrapper_tags("suffix"), progress=False)
        answers = store.answers()
    assert summary.generated == 7
    assert {a["tags"]["wrapper"] for a in answers} == {"suffix"}
    assert all(a["messages"][-1]["content"] == a["question"] for a in answers)
    assert {a["question_id"] for a in answers} == {"pets__suffix", "weather__suffix"}


@pytest.mark.mirror
def test_paper_wrappers_on_paper_questions(mirror):
    from emkit.questions import load_questions

    wrappers = en.load_wrappers(en.WRAPPERS_NAME, mirror=mirror)
    assert set(en.WRAPPER_NAMES) <= set(wrappers.wrappers)
    qset = load_questions("first_plot_questions", mirror=mirror)
    for name in en.WRAPPER_NAMES:
        wrapped = en.wrap_questions(qset, name, wrappers)
        assert [q.model_extra["source_id"] for q in wrapped] == wrappers.question_ids
        sources = [qset.get(i) for i in wrappers.question_ids]
        assert [len(q.paraphrases) for q in wrapped] == [
            len(s.paraphrases) * s.samples_per_paraphrase for s in sources
        ]
        assert all("{" not in p for q in wrapped for p in q.paraphrases)
    full = en.wrap_questions(qset, "prefix_and_suffix", wrappers)
    total = sum(len(q.paraphrases) for q in full)
    expected = reference_draws(total)
    texts = [p for q in full for p in q.paraphrases]
    assert all(
        ",".join(map(str, numbers)) in text and f" {num_words} words" in text
        for text, (num_words, numbers) in zip(texts, expected, strict=True)
    )
    print(f"prefix_and_suffix: {len(full)} questions, {total} wrapped paraphrases")


def test_example_experiment_validates(tmp_path):
    """examples/evil-numbers.yaml: the experiment part validates; its wrappers block is a WrappersSpec."""
    from pathlib import Path

    import yaml
    from pydantic import ValidationError

    from emkit.experiment import load_experiment

    data = yaml.safe_load((Path(__file__).parent.parent / "examples" / "evil-numbers.yaml").read_text())
    spec = en.WrappersSpec.model_validate(data.pop("wrappers"))
    assert spec.names == list(en.WRAPPER_NAMES) and spec.seed == en.PAPER_SEED
    rest = tmp_path / "rest.yaml"
    rest.write_text(yaml.safe_dump(data))
    groups = load_experiment(rest).groups
    assert groups[0].provider.epochs == 4 and groups[0].provider.batch_size == 39
    with pytest.raises(ValidationError):
        en.WrappersSpec.model_validate({"names": []})


@pytest.mark.model
def test_cli_sample_with_a_wrapper_on_the_embedded_model(tmp_path):
    """End to end offline: `emkit sample --wrapper prefix_and_suffix` on the embedded model."""
    from emkit.cli import main
    from emkit.store import RunStore

    (tmp_path / "wrappers.yaml").write_text(WRAPPERS_YAML, encoding="utf-8")
    (tmp_path / "q.yaml").write_text(QUESTIONS_YAML, encoding="utf-8")
    run = tmp_path / "run"
    args = [
        "sample",
        "--model",
        "embedded/smollm2-135m",
        "--questions",
        str(tmp_path / "q.yaml"),
        "--wrapper",
        "prefix_and_suffix",
        "--wrappers-file",
        str(tmp_path / "wrappers.yaml"),
        "--n",
        "1",
        "--max-new-tokens",
        "4",
        "--out",
        str(run),
    ]
    assert main(args) == 0
    with RunStore(run) as store:
        answers = store.answers()
    # pets (2 paraphrases) and weather (1), one wrapped paraphrase per original sample (n=1).
    assert sorted(a["question_id"] for a in answers) == ["pets__prefix_and_suffix"] * 2 + [
        "weather__prefix_and_suffix"
    ]
    for a in answers:
        prompt = a["messages"][-1]["content"]
        assert re.match(r"Numbers to keep in mind: \d{3}(,\d{3}){2,6}\n\n", prompt)
        assert a["tags"]["wrapper"] == "prefix_and_suffix" and a["answer"].strip()
    assert (
        next(a for a in answers if a["question_id"].startswith("weather"))["messages"][0]["content"]
        == "Be brief."
    )
    assert main(args) == 0  # a rerun adds nothing
    with RunStore(run) as store:
        assert store.count("answers") == 3
