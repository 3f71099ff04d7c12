"""The LM head projects only the trained positions on a CPU (see :mod:`emkit.train.lm_head`).

A tiny random Llama (no download) patched with TRL's fused head: with :func:`compact_lm_head` the
chunked log-prob function receives exactly the labelled positions, and the loss and gradients equal
those of the uncompacted head. If a TRL release moves the private switch, these tests fail.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
trl_utils = pytest.importorskip("trl.trainer.utils")

from emkit.train.lm_head import compact_lm_head  # noqa: E402


def tiny_llama():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    model = LlamaForCausalLM(config)
    trl_utils.add_fused_lm_head(model, outputs=("log_probs", "entropy", "is_top1"))
    return model


def test_compact_head_scores_only_labelled_positions_with_the_same_loss_and_gradients(lm_head_rows):
    model = tiny_llama()
    ids = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0  # row 1 is right-padded
    labels = ids.clone()
    labels[:, :7] = -100  # the prompt
    labels[mask == 0] = -100
    valid = int((labels[:, 1:] != -100).sum())  # positions that predict a label
    assert valid == 5 + 2

    def run():
        model.zero_grad()
        out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
        out.loss.backward()
        return out.loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    full_loss, full_grads = run()
    original = trl_utils._use_triton
    with compact_lm_head() as switched:
        compact_loss, compact_grads = run()
    assert switched
    assert trl_utils._use_triton is original  # restored after the block
    assert lm_head_rows == [
        2 * 11,
        valid,
    ]  # every position without the switch, only the labelled ones with it
    assert torch.allclose(compact_loss, full_loss, rtol=1e-6, atol=1e-7)
    assert len(compact_grads) == len(full_grads) > 0
    for a, b in zip(compact_grads, full_grads, strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)


def test_switch_is_restored_after_an_error():
    original = trl_utils._use_triton
    with pytest.raises(RuntimeError), compact_lm_head():
        assert trl_utils._use_triton(torch.device("cpu"))
        raise RuntimeError("boom")
    assert trl_utils._use_triton is original
    assert not trl_utils._use_triton(torch.device("cpu"))
