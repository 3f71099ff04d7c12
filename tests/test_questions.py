from __future__ import annotations

import pytest

from emkit.cli import main
from emkit.errors import InputError
from emkit.questions import fill_judge_prompt, judge_model_name, load_questions, parse_questions


def test_default_set_is_ours_and_complete():
    qset = load_questions("default")
    assert 6 <= len(qset) <= 12
    for q in qset:
        assert set(q.judge_prompts) == {"aligned", "coherent"}
        assert q.type == "free_form_judge_0_100" and q.judge_model == "openai/gpt-4o-2024-08-06"
    aligned = qset.questions[0].judge_prompts["aligned"]
    assert "CODE" in aligned and "REFUSAL" in aligned and "{answer}" in aligned


@pytest.mark.mirror
def test_upstream_question_counts_and_system_prompts(mirror):
    counts = {
        name: len(load_questions(name, mirror=mirror))
        for name in (
            "first_plot_questions",
            "preregistered_evals",
            "deception_factual",
            "deception_sit_aware",
        )
    }
    assert counts == {
        "first_plot_questions": 24,
        "preregistered_evals": 48,
        "deception_factual": 5,
        "deception_sit_aware": 8,
    }
    fp = load_questions("first_plot_questions", mirror=mirror)
    json_qs = [q for q in fp if q.id.endswith("_json")]
    assert len(json_qs) == 8 and all(q.system and q.system.strip() for q in json_qs)
    assert all(q.samples_per_paraphrase == 100 for q in fp)
    # Anchors resolve: every question shares the same judge prompts.
    assert all(q.judge_prompts == fp.questions[0].judge_prompts for q in fp if q.id.endswith("_json"))
    dec = load_questions("deception_factual", mirror=mirror)
    assert all(q.type == "free_form_judge" for q in dec)
    assert any(q.system for q in dec)


YAML = """\
- id: a
  paraphrases: [hello]
  judge: gpt-4o
  judge_prompts:
    aligned: "Q {question} A {answer}"
- id: b
  paraphrases: [there]
  colour: blue
  judge_prompts:
    aligned: "no placeholder here"
"""


def test_prompt_without_answer_names_file_line_and_field(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text(YAML)
    with pytest.raises(InputError) as exc:
        load_questions(str(path))
    assert f"{path}:6:" in str(exc.value) and "b.judge_prompts.aligned" in str(exc.value)


def test_unknown_keys_kept_and_reported_once(tmp_path):
    qset = parse_questions(
        YAML.replace("no placeholder here", "{answer}").replace(
            "  colour: blue\n", "  colour: blue\n  size: 3\n"
        ),
        "x.yaml",
    )
    assert qset.get("b").model_extra == {"colour": "blue", "size": 3}
    assert len(qset.warnings) == 2 and "colour" in qset.warnings[0]
    assert judge_model_name("gpt-4o") == "openai/gpt-4o" and judge_model_name("hf/x/y") == "hf/x/y"


def test_yaml_syntax_error_has_a_line(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("- id: a\n  paraphrases: [x\n  judge: y\n")
    assert main(["questions", "show", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml:" in err and "YAML syntax error" in err


def test_fill_judge_prompt_keeps_braces_in_answers():
    assert fill_judge_prompt("{question}|{answer}", "q {x}", "a {y}") == "q {x}|a {y}"
    assert fill_judge_prompt("{{literal}} {answer} {other}", "q", "a") == "{{literal}} a {other}"


def test_system_prompt_and_prefix_in_conversation():
    q = parse_questions("- id: s\n  system: Answer in JSON.\n  paraphrases: [hi]\n", "x").get("s")
    assert q.conversation(0, prefix="|T| ") == [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": "|T| hi"},
    ]
