"""Assignment tests for Part 5, chapter 1: the Transformer block, assembled."""

import torch

from companion.models import TransformerBlock
from companion.teaching import test


def module_parameters(d, d_ff, num_heads):
    block = TransformerBlock(d, num_heads, d_ff)
    return sum(p.numel() for p in block.parameters())


@test("ex-count-parameters")
def block_parameters_match_the_module(block_parameters):
    assert callable(block_parameters), "block_parameters should be a function"
    for d, d_ff in ((32, 64), (8, 16), (48, 100)):
        expected, got = module_parameters(d, d_ff, 4), block_parameters(d, d_ff)
        assert got == expected, (
            f"block_parameters({d}, {d_ff}) = {got}, but the block has {expected} "
            "parameters: count the weights and biases of the four attention "
            "projections, of the two feed-forward layers, and the two layer norms"
        )


@test("ex-count-parameters", hidden=True)
def block_parameters_do_not_depend_on_the_heads(block_parameters):
    for d, d_ff, heads in ((12, 7, 1), (12, 7, 3), (60, 30, 6), (5, 200, 5)):
        expected, got = module_parameters(d, d_ff, heads), block_parameters(d, d_ff)
        assert got == expected, (
            f"block_parameters({d}, {d_ff}) = {got}, the block with {heads} heads has "
            f"{expected}: the heads split the width, they add no parameters"
        )


@test("ex-decoder-block")
def causal_block_ignores_later_tokens(causal_block):
    assert isinstance(causal_block, TransformerBlock), (
        "causal_block should be a TransformerBlock"
    )
    d = causal_block.linear1.in_features
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(2, 12, d, generator=generator)
    with torch.no_grad():
        base = causal_block(x)[0]
        for k in (0, 5, 11):
            changed = x.clone()
            changed[:, k:] += torch.randn(2, 12 - k, d, generator=generator)
            out = causal_block(changed)[0]
            assert torch.allclose(out[:, :k], base[:, :k], atol=1e-5), (
                f"changing tokens {k}.. moved the outputs of tokens before {k}: "
                "a decoder block needs causal=True"
            )
            assert not torch.allclose(out[:, k], base[:, k], atol=1e-5), (
                f"changing token {k} left its own output unchanged"
            )


@test("ex-decoder-block")
def only_the_changed_tokens_outputs_move(before, after):
    before = torch.as_tensor(before).detach().reshape(10, -1)
    after = torch.as_tensor(after).detach().reshape(10, -1)
    assert torch.allclose(before[:7], after[:7], atol=1e-5), (
        "the outputs of tokens 0-6 differ: change only tokens 7-9 of the input, "
        "and use the causal block for both outputs"
    )
    assert not torch.allclose(before[7], after[7], atol=1e-5), (
        "the output of token 7 did not move: did you change the input's last three "
        "tokens before computing `after`?"
    )
