"""Model loads are quiet: transformers' "Loading weights" bars never reach a stage's output.

transformers 5 draws a tqdm bar per load (and logs load reports); a stage that loads a base model
and an adapter printed several such lines around emkit's own one line. Checked through a real
``emkit sample`` on the embedded model and through the loader itself, with and without an adapter.
"""

from __future__ import annotations

import pytest

from reliability.rel_helpers import run_emkit, write_questions

pytestmark = [pytest.mark.reliability, pytest.mark.model]

ONE_QUESTION = """\
- id: rel_colour
  type: free_form_judge_0_100
  paraphrases: ['Name a colour.']
"""


def test_sampling_the_embedded_model_prints_no_loading_bars(tmp_path) -> None:
    from emkit.engines.embedded import ensure_converted

    # The one-time conversion into the cache says what it does in its own few lines; on a fresh
    # cache (a clean clone) that happens at the first load, so do it first: this test is about loads.
    ensure_converted()
    questions = write_questions(tmp_path, ONE_QUESTION)
    result = run_emkit(
        "sample", "-q", questions, "--n", "1", "--max-new-tokens", "2", "--out", tmp_path / "run", timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    output = result.stdout + result.stderr
    assert "Loading weights" not in output, output
    assert "it/s]" not in output, output  # no other tqdm bar either
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) <= 2, output  # the stage's progress line and its summary


def test_the_loader_draws_no_bar_and_restores_transformers_settings(capfd) -> None:
    from transformers.utils import logging as hf_logging

    from emkit.engines.loading import load_causal_lm

    hf_logging.enable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    load_causal_lm("embedded/smollm2-135m", device="cpu")
    _, err = capfd.readouterr()
    assert "Loading weights" not in err, err
    assert hf_logging.is_progress_bar_enabled() and hf_logging.get_verbosity() == verbosity


def test_loaders_that_call_tqdm_directly_draw_no_bar_during_a_load(capfd) -> None:
    """The one-time GGUF conversion printed 'Converting and de-quantizing GGUF tensors' bars: its
    module calls tqdm itself, past transformers' progress-bar switch."""
    gguf = pytest.importorskip("transformers.modeling_gguf_pytorch_utils")

    from emkit.engines.loading import quiet_transformers

    original = gguf.tqdm
    capfd.readouterr()
    with quiet_transformers():
        assert list(gguf.tqdm(range(300), desc="Converting and de-quantizing GGUF tensors...")) == list(
            range(300)
        )
    _, err = capfd.readouterr()
    assert "Converting" not in err and "it/s" not in err, err
    assert gguf.tqdm is original  # put back after the load
