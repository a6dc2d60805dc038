"""Assignment tests for Part 6, chapter 5: inside a pretrained model."""

import copy

import torch
import torch.nn.functional as F

from companion.teaching import test


def _layer_shares(weights_of_layers, keys, real):
    """Per layer, the weight on the keys where ``keys`` (sentences, seq) is True,
    averaged over the heads and the real query tokens."""
    shares = []
    for w in weights_of_layers:  # (sentences, heads, seq, seq)
        on_keys = (w * keys[:, None, None, :]).sum(-1)  # (sentences, heads, seq)
        shares.append(on_keys.permute(0, 2, 1)[real].mean().item())
    return shares


def _per_layer(name, values, num_layers):
    values = [float(v) for v in values]
    assert len(values) == num_layers, (
        f"{name} has {len(values)} entries, expected one per layer ({num_layers})"
    )
    return values


@test("ex-pretrained-sink")
def swapped_exchanges_the_positions_of_cls_and_sep(swapped, tokens, lengths):
    positions = torch.as_tensor(swapped)
    assert tuple(positions.shape) == tuple(tokens.shape), (
        f"swapped has shape {tuple(positions.shape)}; expected one row of position "
        f"ids per sentence, {tuple(tokens.shape)}"
    )
    for row, n in enumerate(lengths.tolist()):
        expected = torch.arange(n)
        expected[0], expected[n - 1] = n - 1, 0
        assert torch.equal(positions[row, :n].long(), expected), (
            f"sentence {row} ({n} tokens): swapped[{row}, :{n}] is "
            f"{positions[row, :n].tolist()}, expected {expected.tolist()}: [CLS] at "
            "the last position, [SEP] at 0, every other token at its own"
        )


def _at_first(tokens):
    at_first = torch.zeros_like(tokens, dtype=torch.bool)
    at_first[:, 0] = True
    return at_first


def _close(name, got, want):
    assert max(abs(g - w) for g, w in zip(got, want, strict=True)) < 1e-4, (
        f"{name} = {[round(g, 3) for g in got]}, expected "
        f"{[round(w, 3) for w in want]}: per layer, the weight on that token, "
        "averaged over the heads and the real query tokens of every sentence"
    )


@test("ex-pretrained-sink")
def the_first_token_stays_a_sink_without_cls(sink_without_cls, model, encoder,
                                             tokens, lengths, real, num_layers):
    got = _per_layer("sink_without_cls", sink_without_cls, num_layers)
    no_cls = tokens.clone()
    no_cls[:, 0] = model.tokenizer.token_to_id("the")
    with torch.no_grad():
        replaced = encoder(no_cls, lengths).weights
    _close("sink_without_cls", got, _layer_shares(replaced, _at_first(tokens), real))
    assert min(got[1:]) > 0.4, (
        f"with 'the' in place of [CLS], position 0 gets {[round(v, 2) for v in got]} "
        "per layer; expected more than 0.4 in layers 1 to 5, as [CLS] did"
    )


@test("ex-pretrained-sink", hidden=True)
def sep_at_position_0_takes_over_in_layer_1(cls_moved_last, sep_moved_first, encoder,
                                            tokens, lengths, real, num_layers):
    cls = _per_layer("cls_moved_last", cls_moved_last, num_layers)
    sep = _per_layer("sep_moved_first", sep_moved_first, num_layers)
    rows, last = torch.arange(len(tokens)), lengths - 1
    positions = torch.arange(tokens.shape[1]).repeat(len(tokens), 1)
    positions[rows, 0], positions[rows, last] = last, 0
    at_last = torch.zeros_like(tokens, dtype=torch.bool)
    at_last[rows, last] = True
    with torch.no_grad():
        moved = encoder(tokens, lengths, positions).weights
    _close("cls_moved_last", cls, _layer_shares(moved, _at_first(tokens), real))
    _close("sep_moved_first", sep, _layer_shares(moved, at_last, real))
    assert cls[1] < 0.3 and sep[1] > cls[1], (
        f"layer 1 with the positions swapped: [CLS] {cls[1]:.2f}, [SEP] {sep[1]:.2f}; "
        "expected [SEP], now at position 0, to take over most of the weight"
    )


def _mean(value):
    if hasattr(value, "low"):  # a bootstrap estimate
        return float(value.mean)
    return float(torch.as_tensor(value, dtype=torch.float64).mean())


@test("ex-pretrained-uniform-layer")
def most_is_the_layer_with_the_lowest_cosine(most, uniform_cos, num_layers):
    assert set(uniform_cos) == set(range(num_layers)), (
        f"uniform_cos should have one entry per layer 0, ..., {num_layers - 1}"
    )
    cos = {layer: _mean(value) for layer, value in uniform_cos.items()}
    assert all(0 < c < 1 for c in cos.values()), (
        f"mean cosines {cos}: expected values between 0 and 1"
    )
    lowest = min(cos, key=cos.get)
    assert int(most) == lowest, (
        f"most = {most}, but the embeddings move furthest (lowest mean cosine, "
        f"{cos[lowest]:.3f}) when layer {lowest} is uniform"
    )


@test("ex-pretrained-uniform-layer", hidden=True)
def uniform_cos_of_the_last_layer_is_right(uniform_cos, most, model, tokens, lengths,
                                           reference_embeddings, num_layers):
    layer = num_layers - 1
    got = _mean(uniform_cos[layer])
    flat = copy.deepcopy(model)
    with torch.no_grad():
        flat.encoder.blocks[layer].attention.q_proj.weight.zero_()
        flat.encoder.blocks[layer].attention.q_proj.bias.zero_()
        changed = flat(tokens, lengths)
    expected = F.cosine_similarity(changed, reference_embeddings).mean().item()
    assert abs(got - expected) < 1e-4, (
        f"uniform_cos[{layer}] has mean {got:.4f}, expected {expected:.4f}: zero the "
        "query projection (weight and bias) of that layer only, in a copy of the "
        "model, and compare its embeddings with the originals"
    )
    assert int(most) == layer, f"most = {most}, expected layer {layer}"


def _views(views):
    return {key: [float(v) for v in views[key]] for key in ("next token", "[CLS]")}


@test("ex-pretrained-next-contribution")
def contribution_moves_the_share_from_cls_to_the_next_token(views):
    shares = _views(views)
    (next_weight, next_norm), (cls_weight, cls_norm) = shares.values()
    assert next_norm > next_weight + 0.05, (
        f"on the next token: by weight {next_weight:.3f}, by contribution "
        f"{next_norm:.3f}; expected the contribution view to give it clearly more"
    )
    assert cls_norm < cls_weight - 0.05, (
        f"on [CLS]: by weight {cls_weight:.3f}, by contribution {cls_norm:.3f}; "
        "[CLS]'s values are short, so expected clearly less by contribution"
    )


@test("ex-pretrained-next-contribution", hidden=True)
def views_match_a_recomputation(views, output, encoder, next_layer, next_head,
                                value_norms, real, lengths):
    weights = output.weights[next_layer][:, next_head]  # (sentences, seq, seq)
    with torch.no_grad():
        norms = value_norms(encoder.blocks[next_layer], output.states[next_layer])
    terms = weights * norms[:, next_head, None, :]
    by_norm = terms / terms.sum(-1, keepdim=True)
    seq = weights.shape[-1]
    has_right = real & (torch.arange(seq) < lengths[:, None] - 1)

    def on_next(a):
        return a[:, :-1, 1:].diagonal(dim1=1, dim2=2)[has_right[:, :-1]].mean().item()

    def on_cls(a):
        return a[:, :, 0][real].mean().item()

    expected = {
        "next token": (on_next(weights), on_next(by_norm)),
        "[CLS]": (on_cls(weights), on_cls(by_norm)),
    }
    for key, got in _views(views).items():
        gap = max(abs(g - e) for g, e in zip(got, expected[key], strict=True))
        assert gap < 1e-4, (
            f"views[{key!r}] = {got}, expected {[round(e, 4) for e in expected[key]]}: "
            "(share by weight, share by contribution), averaged over the query tokens "
            "that have such a key"
        )
