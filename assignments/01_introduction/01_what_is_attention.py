"""Assignment tests for Part 1, chapter 1: what attention is."""

import torch

from companion.teaching import test


def gaussian_weights(queries, keys, width):
    """Reference: Gaussian attention weights of ``width``, one row per query."""
    q = torch.as_tensor(queries, dtype=torch.float64).reshape(-1)
    k = torch.as_tensor(keys, dtype=torch.float64).reshape(-1)
    return torch.softmax(-((q[:, None] - k[None, :]) ** 2) / (2 * width**2), dim=-1)


def as_weights(weights):
    return torch.as_tensor(weights).detach().to(torch.float64)


@test("ex-width-temperature")
def temperature_w_squared_gives_the_gaussian_weights(weights_by_temperature, x_train):
    for queries, width in [([1.3], 0.4), ([0.2, 2.5, 4.9], 2.0)]:
        q = torch.tensor(queries)
        got = as_weights(weights_by_temperature(q, x_train, width))
        expected = gaussian_weights(q, x_train, width)
        assert got.shape == expected.shape, (
            f"expected one row of {len(x_train)} weights per query, shape "
            f"{tuple(expected.shape)}, got {tuple(got.shape)}"
        )
        assert torch.allclose(got, expected, atol=1e-5), (
            f"for w = {width} the weights differ from the Gaussian weights of width "
            "w: the scores are -(q - k)^2 / 2 and the temperature is T = w^2"
        )


@test("ex-width-temperature", hidden=True)
def temperature_works_for_any_keys(weights_by_temperature):
    keys = torch.linspace(-3.0, 3.0, 7)
    queries = torch.tensor([-1.0, 0.5])
    got = as_weights(weights_by_temperature(queries, keys, 0.7))
    expected = gaussian_weights(queries, keys, 0.7)
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5), (
        "weights_by_temperature must work for any queries and keys, one row per query"
    )


@test("ex-leave-one-out")
def training_loss_falls_towards_zero(train_losses, shrinking_widths):
    widths = [float(w) for w in shrinking_widths]
    losses = [float(loss) for loss in train_losses]
    assert len(widths) >= 3 and len(losses) == len(widths), (
        "expected one training loss per width, for at least three widths"
    )
    assert widths == sorted(widths, reverse=True), "list the widths from large to small"
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:], strict=False)), (
        f"the training loss without the mask should fall as w shrinks, got {losses}"
    )
    assert losses[-1] < 1e-2, (
        f"at w = {widths[-1]} the training loss is {losses[-1]:.4f}: it tends to 0 as "
        "w -> 0 (each point copies its own target); try smaller widths, down to 0.001"
    )


@test("ex-leave-one-out", hidden=True)
def training_losses_are_in_sample(train_losses, shrinking_widths, x_train, y_train):
    y = y_train.to(torch.float64)
    for width, loss in zip(shrinking_widths, train_losses, strict=True):
        prediction = gaussian_weights(x_train, x_train, float(width)) @ y
        expected = ((prediction - y) ** 2).mean().item()
        assert abs(float(loss) - expected) < 1e-4, (
            f"at w = {width}: training MSE {float(loss):.4f}, expected {expected:.4f} "
            "(every training point attends to all of them, itself included)"
        )


@test("ex-dot-product")
def dot_product_plus_key_bias_gives_the_gaussian_weights(dot_plus_bias, q, w, x_train):
    got = as_weights(dot_plus_bias).reshape(-1)
    expected = gaussian_weights(q, x_train, float(w)).reshape(-1)
    assert got.shape == expected.shape, (
        f"expected {len(x_train)} weights, one per key, got shape {tuple(got.shape)}"
    )
    assert torch.allclose(got, expected, atol=1e-5), (
        "softmax(q k / w^2 + key bias) should equal the Gaussian weights of width w "
        "for the query q: check the bias -k^2 / (2 w^2)"
    )


@test("ex-dot-product", hidden=True)
def key_bias_is_the_same_for_every_query(key_bias, w, x_train):
    bias = as_weights(key_bias).reshape(-1)
    assert bias.shape == x_train.shape, "the key bias has one entry per key"
    keys = x_train.to(torch.float64)
    for query in (-1.0, 0.7, 3.3):
        got = torch.softmax(query * keys / float(w) ** 2 + bias, dim=-1)
        expected = gaussian_weights([query], keys, float(w))[0]
        assert torch.allclose(got, expected, atol=1e-5), (
            f"with the query {query}, softmax(q k / w^2 + key_bias) is not the "
            "Gaussian weights: the bias must depend only on the key, -k^2 / (2 w^2)"
        )


@test("ex-dot-product")
def dot_product_alone_prefers_the_largest_keys(dot_only, q, w, x_train):
    got = as_weights(dot_only).reshape(-1)
    keys = x_train.to(torch.float64)
    query = torch.as_tensor(q, dtype=torch.float64).reshape(-1)[0]
    expected = torch.softmax(query * keys / float(w) ** 2, dim=-1)
    assert got.shape == expected.shape and torch.allclose(got, expected, atol=1e-5), (
        "dot_only should be the softmax of q k / w^2 alone, without the key bias"
    )
    if query > 0:
        assert keys[got.argmax()] == keys.max(), (
            "without the bias a positive query should weigh the largest key most"
        )
