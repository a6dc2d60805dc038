"""Assignment tests for Part 6, chapter 3: the vision transformer."""

import torch
import torch.nn.functional as F

from companion.teaching import test


def _cost(vit_cost, side, size):
    got = vit_cost(side, size)
    assert len(got) == 3, (
        f"vit_cost({side}, {size}) returned {got!r}: expected three numbers (tokens, "
        "numbers per patch, attention weights per head and layer)"
    )
    return tuple(int(v) for v in got)


@test("ex-vit-cost")
def vit_cost_for_the_digits_and_the_paper(vit_cost):
    for side, size, expected in [(8, 2, (17, 4, 289)), (224, 16, (197, 256, 38809))]:
        got = _cost(vit_cost, side, size)
        assert got == expected, (
            f"vit_cost({side}, {size}) = {got}, expected {expected}: (side / size)^2 "
            "patches plus the class token; size^2 pixels per patch; every token "
            "attends to every token"
        )


@test("ex-vit-cost", hidden=True)
def vit_cost_in_general(vit_cost):
    for side, size in [(8, 1), (8, 8), (12, 3), (32, 4), (224, 1)]:
        tokens = (side // size) ** 2 + 1
        expected = (tokens, size * size, tokens * tokens)
        got = _cost(vit_cost, side, size)
        assert got == expected, f"vit_cost({side}, {size}) = {got}, expected {expected}"


def _scrambled(pixel_order, test_images):
    order = torch.as_tensor(pixel_order).long().flatten()
    assert sorted(order.tolist()) == list(range(64)), (
        "pixel_order should be a permutation of the 64 pixel indices 0, ..., 63"
    )
    assert not torch.equal(order, torch.arange(64)), (
        "pixel_order is the identity: draw a random permutation (torch.randperm)"
    )
    return order, test_images.reshape(-1, 64)[:, order].reshape(-1, 8, 8)


@test("ex-mlp-permutation")
def follower_reads_scrambled_digits_like_the_mlp(follower, pixel_order, models,
                                                 test_images):
    _, scrambled = _scrambled(pixel_order, test_images)
    with torch.no_grad():
        expected = models["MLP", 0](test_images)
        got = follower(scrambled)
    gap = (got - expected).abs().max().item()
    assert gap < 1e-4, (
        f"follower on the scrambled test images differs from the trained MLP "
        f"(models['MLP', 0]) on the originals by up to {gap:.3g}: permute the columns "
        "of a copy's first weight matrix with pixel_order, and leave the trained MLP "
        "unchanged"
    )


@test("ex-mlp-permutation", hidden=True)
def only_the_first_layer_is_permuted(follower, pixel_order, models, test_images):
    order, _ = _scrambled(pixel_order, test_images)
    mlp = models["MLP", 0]
    original = dict(mlp.named_parameters())
    moved = dict(follower.named_parameters())
    assert moved.keys() == original.keys(), "follower should be a copy of the MLP"
    first = next(name for name, p in original.items() if p.dim() == 2)
    for name, p in original.items():
        expected = p[:, order] if name == first else p
        assert torch.equal(moved[name], expected), (
            f"follower's {name} should be "
            + ("the MLP's, columns permuted" if name == first else "the MLP's")
        )


def _moved(images, rows, cols):
    # the content moves down by rows and right by cols; zeros come in
    padded = F.pad(images, (1, 1, 1, 1))
    h, w = images.shape[-2:]
    return padded[..., 1 - rows : 1 - rows + h, 1 - cols : 1 - cols + w]


@test("ex-shift")
def shift_moves_the_content(shift):
    images = torch.arange(1.0, 2 * 8 * 8 + 1).reshape(2, 8, 8)
    before = images.clone()
    for rows, cols in [(0, 1), (0, -1), (1, 0), (-1, 0), (1, -1)]:
        got = shift(images, rows, cols)
        assert torch.equal(images, before), "shift should not change its input"
        expected = _moved(images, rows, cols)
        assert torch.equal(got, expected), (
            f"shift(images, {rows}, {cols}) is wrong: the content should move "
            f"{rows} pixel(s) down and {cols} right (negative: up, left), with zeros "
            "(background) where nothing moves in"
        )


KINDS = ("learned", "MLP", "CNN")


@test("ex-shift")
def every_model_loses_on_shifted_digits(shifted_accuracy, results):
    for kind in KINDS:
        assert kind in shifted_accuracy, f"shifted_accuracy has no entry {kind!r}"
        value, unshifted = float(shifted_accuracy[kind]), results[kind][0][1]
        assert 0 <= value < unshifted - 0.25, (
            f"{kind}: {value:.3f} on shifted digits against {unshifted:.3f} unshifted; "
            "expected a large drop for every model (seed 0 each)"
        )


@test("ex-shift", hidden=True)
def shifted_accuracy_is_right(shifted_accuracy, models, test_images, test_labels):
    for kind in KINDS:
        values = []
        for rows, cols in [(0, 1), (0, -1), (1, 0), (-1, 0)]:
            with torch.no_grad():
                logits = models[kind, 0](_moved(test_images, rows, cols))
            values.append((logits.argmax(-1) == test_labels).double().mean().item())
        expected = sum(values) / len(values)
        assert abs(float(shifted_accuracy[kind]) - expected) < 1e-6, (
            f"shifted_accuracy[{kind!r}] = {shifted_accuracy[kind]}, expected "
            f"{expected:.4f}: the mean test accuracy of models[{kind!r}, 0] over the "
            "four one-pixel shifts"
        )
