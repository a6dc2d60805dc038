"""Assignment tests for Part 7, chapter 1: outlook."""

import math

import torch

from companion.teaching import test

GIB = 2**30


def _tokens_that_fit(config, kv_heads, memory=24 * GIB):
    """Tokens of float16 key-value cache that fit beside the float16 weights of a
    Llama-style model ``config`` with ``kv_heads`` key/value heads."""
    d, layers, ffn = config["d"], config["layers"], config["ffn"]
    vocab = config["vocab"]
    head = d // config["heads"]
    d_kv = kv_heads * head
    per_layer = 2 * d * d + 2 * d * d_kv + 3 * d * ffn + 2 * d
    parameters = layers * per_layer + 2 * vocab * d + d
    per_token = 2 * layers * d_kv * 2  # a key and a value per layer, 2 bytes each
    return (memory - 2 * parameters) / per_token


@test("ex-context-budget")
def tokens_beside_the_7b_weights(context_tokens, small):
    expected = _tokens_that_fit(small, 32)
    got = float(context_tokens[32])
    assert abs(got - expected) <= 0.01 * expected, (
        f"context_tokens[32] = {got:,.0f}, expected about {expected:,.0f}: subtract "
        "the float16 weights (2 bytes per parameter) from 24 GiB, then divide by the "
        "cache of one token (a key and a value in every layer, 2 bytes per number)"
    )


@test("ex-context-budget", hidden=True)
def eight_kv_heads_fit_more_than_four_times_as_many(context_tokens, small):
    expected = _tokens_that_fit(small, 8)
    got = float(context_tokens[8])
    assert abs(got - expected) <= 0.01 * expected, (
        f"context_tokens[8] = {got:,.0f}, expected about {expected:,.0f}: with 8 "
        "key/value heads the cache per token is 4 times smaller, and the key and "
        "value projections, so the weights, shrink too"
    )
    assert got > 4 * float(context_tokens[32]), (
        "8 key/value heads should fit more than 4 times as many tokens as 32"
    )


S = (2, 8, 32)


def _rows(extension):
    rows = {}
    for s in S:
        assert s in extension, f"extension has no entry for s = {s}"
        ntk_out, ntk_worst, yarn_out = extension[s]
        rows[s] = (int(ntk_out), float(ntk_worst), int(yarn_out))
    return rows


@test("ex-larger-extension")
def yarn_stays_in_range_while_ntk_overshoots_more(extension):
    rows = _rows(extension)
    for s, (_, _, yarn_out) in rows.items():
        assert yarn_out == 0, (
            f"s = {s}: YaRN has {yarn_out} pairs out of range; it interpolates every "
            "pair that never turned in training, so expected none"
        )
    counts = {s: row[0] for s, row in rows.items()}
    assert len(set(counts.values())) == 1 and counts[2] > 0, (
        f"NTK-aware pairs out of range by s: {counts}; expected the same slow pairs "
        "out for every s"
    )
    worst = [rows[s][1] for s in S]
    assert 1 < worst[0] < worst[1] < worst[2], (
        f"NTK-aware worst overshoot for s = 2, 8, 32: {worst}; expected it above 1 "
        "and growing with s"
    )


@test("ex-larger-extension", hidden=True)
def ntk_numbers_match_a_recomputation(extension, theta, BASE, D_HEAD, TRAIN_LEN):
    rows = _rows(extension)
    pair = torch.arange(D_HEAD // 2, dtype=torch.float64)
    never_turned = theta * (TRAIN_LEN - 1) < 2 * math.pi
    for s in S:
        base = BASE * s ** (D_HEAD / (D_HEAD - 2))
        ratio = base ** (-2 * pair / D_HEAD) * (s * TRAIN_LEN - 1) / (theta * TRAIN_LEN)
        out = never_turned & (ratio >= 1)
        expected = (int(out.sum()), float(ratio[out].max()))
        got = rows[s][:2]
        assert got[0] == expected[0] and abs(got[1] - expected[1]) < 1e-6, (
            f"s = {s}: NTK-aware (pairs out, worst overshoot) = {got}, expected "
            f"({expected[0]}, {expected[1]:.4f}): a pair is out when it never turned "
            "in training and its largest angle over s x the context exceeds the "
            "largest angle seen in training"
        )
