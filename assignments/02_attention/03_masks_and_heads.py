"""Assignment tests for Part 2, chapter 3: masks and heads."""

import math

import torch

from companion.teaching import test

P_DROP = 0.5  # the dropout probability of the exercise


def output_without_dropout(q, k, v):
    """Reference: softmax(Q K^T / sqrt(d_k)) V in plain torch."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    return torch.softmax(scores, dim=-1) @ v


def mean_and_bound(draws, clean):
    """The mean over the first axis of ``draws`` and 5 standard errors of it."""
    draws = torch.as_tensor(draws).detach().to(torch.float64)
    assert draws.dim() == clean.dim() + 1 and draws.shape[1:] == clean.shape, (
        f"expected the draws stacked along a first axis, shape (draws, "
        f"{', '.join(map(str, clean.shape))}), got {tuple(draws.shape)}"
    )
    assert draws.shape[0] >= 1000, "average over many draws (thousands)"
    spread = draws.std(0).max().item()
    assert spread > 0, f"the draws are all equal: drop the weights with p = {P_DROP}"
    return draws.mean(0), 5 * spread / math.sqrt(draws.shape[0])


@test("ex-dropout-scale")
def mean_with_the_factor_is_the_output_without_dropout(outs, qe, ke, ve):
    clean = output_without_dropout(qe, ke, ve)
    mean, bound = mean_and_bound(outs, clean)
    gap = (mean - clean).abs().max().item()
    assert gap < bound, (
        f"the mean of the dropped outputs differs from the output without dropout "
        f"by {gap:.4f}, more than 5 standard errors ({bound:.4f}): with the factor "
        "1/(1-p) the expected weights are the weights without dropout"
    )


@test("ex-dropout-scale")
def mean_without_the_factor_shrinks_by_one_minus_p(unscaled, qe, ke, ve):
    clean = output_without_dropout(qe, ke, ve)
    mean, bound = mean_and_bound(unscaled, clean)
    gap = (mean - (1 - P_DROP) * clean).abs().max().item()
    assert gap < bound, (
        f"without the factor the mean should be (1 - p) times the output without "
        f"dropout; it differs from it by {gap:.4f} (5 standard errors: {bound:.4f})"
    )
    assert (mean - clean).abs().max().item() > bound, (
        "without the factor the mean should not equal the output without dropout"
    )


@test("ex-dropout-scale", hidden=True)
def unscaled_draws_are_the_same_draws(unscaled, outs):
    assert torch.allclose(torch.as_tensor(unscaled), (1 - P_DROP) * outs), (
        "unscaled should be the same draws as outs, multiplied by 1 - p"
    )


def combined_mask():
    """Reference: causal and padding mask for lengths (4, 2), True = may attend."""
    lengths = torch.tensor([4, 2])
    i, j = torch.arange(4)[:, None], torch.arange(4)[None, :]
    return (j <= i)[None] & (j < lengths[:, None, None])


@test("ex-mask-conventions")
def mask_is_causal_and_padding(mask):
    got = torch.as_tensor(mask).to(torch.bool)
    expected = combined_mask()
    assert got.numel() == expected.numel(), (
        f"expected one 4 x 4 mask per sequence, shape (2, 1, 4, 4), got "
        f"{tuple(got.shape)}"
    )
    assert torch.equal(got.reshape(2, 4, 4), expected), (
        "query i may attend to key j when j <= i (causal) and key j is not padding "
        "(j < the sequence's length): combine the two masks with 'and'"
    )


@test("ex-mask-conventions")
def no_row_is_empty_and_the_module_mask_is_inverted(empty_rows, blocked):
    assert int(empty_rows) == 0, (
        f"empty_rows = {empty_rows!r}: with right padding every query may attend to "
        "key 0, so no row is entirely masked"
    )
    got = torch.as_tensor(blocked)
    assert tuple(got.shape) == (2, 4, 4), (
        f"nn.MultiheadAttention wants a (batch * heads, q, k) = (2, 4, 4) mask, got "
        f"{tuple(got.shape)}"
    )
    assert torch.equal(got.to(torch.bool), ~combined_mask()), (
        "nn.MultiheadAttention reads True as 'may NOT attend': invert the mask"
    )


@test("ex-mask-conventions", hidden=True)
def companion_and_the_module_agree(ours, theirs):
    assert not torch.isnan(theirs).any(), "nn.MultiheadAttention returned NaN"
    assert ours.shape == theirs.shape and torch.allclose(ours, theirs), (
        "companion and nn.MultiheadAttention (same weights, inverted mask) differ"
    )


@test("ex-kv-budget")
def tokens_that_fit_in_16_gib(context_tokens):
    budget = 16 * 2**30
    heads = {"multi-head": 32, "grouped-query": 8, "multi-query": 1}
    for name, kv_heads in heads.items():
        assert name in context_tokens, f"context_tokens has no entry {name!r}"
        per_token = 2 * 32 * kv_heads * 128 * 2  # bytes per token, equation kv-cache
        expected, got = budget // per_token, context_tokens[name]
        assert abs(got - expected) < 1, (
            f"{name}: expected {expected} tokens, got {got}; with h_kv = {kv_heads} "
            f"one token costs 2 x layers x h_kv x d_k x bytes = {per_token} bytes"
        )


@test("ex-buffer")
def double_converts_the_weights_not_the_mask(layer64):
    floats = [p.dtype for p in layer64.parameters() if p.is_floating_point()]
    assert floats and all(d == torch.float64 for d in floats), (
        "after .double() every floating-point parameter should be float64"
    )
    assert layer64.causal.dtype == torch.bool, (
        f"the mask should stay boolean under .double(), got {layer64.causal.dtype}"
    )
    assert tuple(layer64.causal.shape) == (16, 16), "build the layer with max_len=16"


@test("ex-buffer")
def a_persistent_mask_fixes_max_len(saved, loaded):
    assert "causal" in saved, "a persistent buffer is saved in the state_dict"
    assert tuple(saved["causal"].shape) == (16, 16), (
        "the saved mask should be the 16 x 16 mask of max_len=16"
    )
    assert isinstance(loaded, bool) and not loaded, (
        "loading a 16 x 16 mask into a layer with max_len=32 should fail (loaded = "
        "False): the shapes differ"
    )


@test("ex-buffer", hidden=True)
def persistent_layer_saves_and_rejects(PersistentCausalSelfAttention, saved):
    fresh = PersistentCausalSelfAttention(8, 2, max_len=32).state_dict()
    assert "causal" in fresh, "PersistentCausalSelfAttention should save its mask"
    try:
        PersistentCausalSelfAttention(8, 2, max_len=32).load_state_dict(saved)
    except RuntimeError:
        return
    raise AssertionError("loading a max_len=16 checkpoint into max_len=32 worked")
