"""Assignment tests for Part 5, chapter 3: length generalisation."""

import torch

from companion.teaching import test


def second_half_accuracy(model, data):
    """Accuracy of ``model`` on the second half of the sequences in ``data``."""
    tokens, targets, _ = data
    with torch.no_grad():
        predicted = model(tokens).argmax(-1)
    return (predicted == targets)[:, tokens.shape[1] // 2 :].double().mean().item()


@test("ex-one-layer-nope")
def one_layer_stays_at_the_order_blind_bound(one_layer_accuracy, bound):
    for n, limit in bound.items():
        assert n in one_layer_accuracy, f"one_layer_accuracy has no length {n}"
        accuracy = float(one_layer_accuracy[n])
        assert abs(accuracy - limit) < 0.05, (
            f"at length {n} the one-layer model scores {accuracy:.3f}, expected "
            f"about the order-blind bound {limit:.3f} (accuracy on the second half "
            "of the test sequences, as per_sequence measures it)"
        )


@test("ex-one-layer-nope", hidden=True)
def one_layer_model_is_one_layer_without_positions(
    one_layer, one_layer_accuracy, test_sets
):
    blocks = one_layer.encoder.blocks
    assert len(blocks) == 1, f"one_layer has {len(blocks)} blocks, expected one"
    assert one_layer.encoder.position == "none", (
        f"one_layer uses position={one_layer.encoder.position!r}, expected 'none'"
    )
    for n, data in test_sets.items():
        expected = second_half_accuracy(one_layer, data)
        assert abs(float(one_layer_accuracy[n]) - expected) < 0.01, (
            f"one_layer_accuracy[{n}] = {one_layer_accuracy[n]}, but one_layer "
            f"scores {expected:.3f} on the second half of test_sets[{n}]"
        )


@test("ex-alibi-errors")
def most_alibi_errors_give_the_previous_digit(share_second):
    share = float(share_second)
    assert 0.5 < share <= 1, (
        f"share_second = {share:.3f}: expected most of ALiBi's errors (a share "
        "above 1/2) to be the second most recent digit"
    )


@test("ex-alibi-errors", hidden=True)
def share_second_matches_a_recount(share_second, models, test_sets, DIGITS):
    tokens, targets, last_digit_at = test_sets[32]
    with torch.no_grad():
        predicted = models["alibi", 0](tokens).argmax(-1)
    wrong = predicted != targets
    batch, length = tokens.shape
    digit_at = torch.where(tokens < DIGITS, torch.arange(length), -1)
    # the latest digit strictly before each position (-1: none)
    latest_before = (
        torch.cat([torch.full((batch, 1), -1), digit_at[:, :-1]], 1).cummax(1).values
    )
    previous_at = latest_before.gather(1, last_digit_at)
    previous_digit = tokens.gather(1, previous_at.clamp(min=0))
    second = wrong & (previous_at >= 0) & (predicted == previous_digit)
    expected = second.sum().item() / wrong.sum().item()
    assert abs(float(share_second) - expected) < 1e-6, (
        f"share_second = {float(share_second):.4f}, expected {expected:.4f}: among "
        "the wrong predictions of models['alibi', 0] on test_sets[32], the share "
        "equal to the digit before the most recent one"
    )
