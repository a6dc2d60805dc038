"""Assignment tests for Part 2, chapter 4: variants of attention."""

import torch
import torch.nn.functional as F

from companion.teaching import test


def feature_map(x):
    """The feature map of Katharopoulos et al. (2020): elu(x) + 1."""
    return F.elu(x) + 1


@test("ex-linear-rnn")
def recurrence_gives_causal_linear_attention(outputs, q, k, v):
    got = torch.stack(list(outputs)) if isinstance(outputs, list | tuple) else outputs
    similarity = feature_map(q) @ feature_map(k).T
    similarity = similarity * torch.ones_like(similarity).tril()  # keys j <= i
    expected = (similarity @ v) / similarity.sum(-1, keepdim=True)
    assert got.shape == expected.shape, (
        f"expected one output per token, shape {tuple(expected.shape)}, got "
        f"{tuple(got.shape)}"
    )
    assert torch.allclose(got, expected, atol=1e-8), (
        "output i should be phi(q_i)^T S_i / (phi(q_i)^T z_i), with S_i and z_i "
        "summing over the keys j <= i only"
    )


@test("ex-linear-rnn", hidden=True)
def final_state_sums_over_every_token(state, normaliser, k, v):
    phi_k = feature_map(k)
    assert torch.allclose(state, phi_k.T @ v, atol=1e-8), (
        "after the last token the state S should be the sum of phi(k_j) v_j^T"
    )
    assert torch.allclose(normaliser, phi_k.sum(0), atol=1e-8), (
        "after the last token z should be the sum of phi(k_j)"
    )


def reach_all(n_tokens, window, layers):
    """Reference: does the last of ``n_tokens`` see all of them through ``layers``
    layers of causal local attention of ``window``?"""
    offset = torch.arange(n_tokens)[:, None] - torch.arange(n_tokens)[None, :]
    one_layer = ((offset >= 0) & (offset <= window)).long()
    reach = one_layer
    for _ in range(layers - 1):
        reach = ((reach @ one_layer) > 0).long()
    return bool((reach[-1] > 0).all())


@test("ex-receptive-field")
def layers_needed_to_see_the_whole_sequence(needed, n_tok, window):
    expected = next(L for L in range(1, n_tok) if reach_all(n_tok, window, L))
    assert int(needed) == expected, (
        f"for {n_tok} tokens and window {window} the last token sees every position "
        f"after {expected} layers, not {needed}: L layers reach L w positions back"
    )


@test("ex-receptive-field", hidden=True)
def sees_all_agrees_with_the_mask_products(sees_all, n_tok, window):
    for layers in range(1, -(-(n_tok - 1) // window) + 3):
        expected = reach_all(n_tok, window, layers)
        assert bool(sees_all(layers)) == expected, (
            f"sees_all({layers}) should be {expected} for {n_tok} tokens, window "
            f"{window}"
        )


@test("ex-gat-weights")
def node_0_attends_most_to_its_top_neighbour(top, gat_weights, adjacency):
    weights = gat_weights.mean(0)[0]  # node 0, averaged over heads
    neighbours = adjacency[0].nonzero()[:, 0]
    expected = int(neighbours[weights[neighbours].argmax()])
    assert int(top) == expected, (
        f"node 0 gives its largest head-averaged weight to node {expected}, not "
        f"{top}: look at row 0 of the first layer's weights, averaged over heads"
    )


@test("ex-gat-weights")
def gat_attention_is_not_symmetric(symmetric, gat_weights):
    mean = gat_weights.mean(0)
    expected = torch.allclose(mean, mean.T)
    assert isinstance(symmetric, bool) and symmetric == expected, (
        f"symmetric should be {expected}: alpha_ij is normalised over the "
        "neighbours of i and alpha_ji over those of j; compare the matrix with "
        "its transpose"
    )
