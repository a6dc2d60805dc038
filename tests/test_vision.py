import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from companion.positional import sinusoidal_encoding, sinusoidal_encoding_2d
from companion.tasks.vision import (
    CNNClassifier,
    MLPClassifier,
    VisionTransformer,
    class_token_attention,
    digits_split,
    occlusion_effect,
    patchify,
)
from companion.training import train


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_digits_split_shapes_scaling_and_stratification():
    train_x, train_y, test_x, test_y = digits_split(test_size=0.2, seed=0)
    # 1797 images; 20% rounded up for the test set
    assert train_x.shape == (1437, 8, 8) and test_x.shape == (360, 8, 8)
    assert train_y.shape == (1437,) and test_y.shape == (360,)
    assert train_x.dtype == torch.float32 and train_y.dtype == torch.int64
    assert 0.0 <= float(train_x.min()) and float(train_x.max()) == 1.0
    # the raw pixels are counts 0..16, so the scaled ones are multiples of 1/16
    assert torch.equal(train_x * 16, (train_x * 16).round())
    counts_train = torch.bincount(train_y, minlength=10).double()
    counts_test = torch.bincount(test_y, minlength=10).double()
    total = counts_train + counts_test
    assert int(total.sum()) == 1797
    # stratified: each digit's test share is 20% up to rounding
    assert ((counts_test - 0.2 * total).abs() <= 1).all()


def test_digits_split_is_deterministic_and_depends_on_seed():
    a = digits_split(seed=3)
    b = digits_split(seed=3)
    c = digits_split(seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"test_size": 0.0}, "test_size"),
        ({"test_size": 1.5}, "test_size"),
        ({"test_size": 1}, "test_size"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"test_size": True}, r"test_size must be a number in \(0, 1\), got True"),
        ({"test_size": float("nan")}, "test_size must be a number in"),
        ({"seed": True}, r"seed must be an integer in \[0, 4294967296\), got True"),
        ({"seed": 2**32}, r"seed must be an integer in \[0, 4294967296\)"),
    ],
)
def test_digits_split_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        digits_split(**kwargs)


def test_patchify_hand_example():
    # a 4x4 image holding 0..15 row by row; 2x2 patches in raster order
    image = torch.arange(16.0).reshape(1, 4, 4)
    expected = torch.tensor(
        [[0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]],
        dtype=torch.float32,
    )
    assert torch.equal(patchify(image, 2)[0], expected)
    # a 2x4 image, patch 2: two patches side by side
    wide = torch.arange(8.0).reshape(1, 2, 4)
    assert patchify(wide, 2)[0].tolist() == [[0, 1, 4, 5], [2, 3, 6, 7]]
    # one patch covering the whole image is the flattened image
    assert torch.equal(patchify(image, 4)[0, 0], torch.arange(16.0))


def test_patchify_channels_come_first_within_a_patch():
    # two channels: channel 1 = channel 0 + 100
    image = torch.arange(4.0).reshape(1, 1, 2, 2)
    image = torch.cat([image, image + 100], dim=1)
    assert patchify(image, 2)[0].tolist() == [[0, 1, 2, 3, 100, 101, 102, 103]]


@pytest.mark.parametrize(
    ("shape", "size"),
    [((3, 8, 8), 2), ((3, 8, 8), 4), ((2, 3, 8, 8), 2), ((2, 2, 6, 9), 3)],
)
def test_patchify_equals_unfold(shape, size):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    four_d = x if x.dim() == 4 else x[:, None]
    expected = F.unfold(four_d, kernel_size=size, stride=size).transpose(1, 2)
    assert torch.equal(patchify(x, size), expected)


@pytest.mark.parametrize(
    ("images", "size", "message"),
    [
        (torch.zeros(2, 8, 8), 3, "8x8 is not divisible by patch_size=3"),
        (torch.zeros(2, 8, 6), 4, "8x6 is not divisible"),
        (torch.zeros(8, 8), 2, "3 or 4 axes"),
        (torch.zeros(1, 1, 1, 8, 8), 2, "3 or 4 axes"),
        (torch.zeros(2, 8, 8, dtype=torch.long), 2, "floating-point"),
        (torch.zeros(2, 8, 8), 0, "patch_size"),
        (torch.zeros(2, 0, 8), 2, r"images must have non-empty .* got \(2, 0, 8\)"),
        (torch.zeros(2, 0, 8, 8), 2, "images must have non-empty"),
        (torch.full((2, 8, 8), float("nan")), 2, "images contains NaN"),
        (torch.full((2, 8, 8), float("-inf")), 2, "images contains NaN or infinite"),
    ],
)
def test_patchify_rejects_bad_input(images, size, message):
    with pytest.raises(ValueError, match=message):
        patchify(images, size)


def small_vit(position="learned", **options):
    torch.manual_seed(0)
    kwargs = dict(d_model=16, num_heads=2, num_layers=2, d_ff=24, position=position)
    kwargs.update(options)
    return VisionTransformer(**kwargs)


@pytest.mark.parametrize("position", ["learned", "sinusoidal_2d", "none"])
def test_vit_shapes_and_attention(position):
    model = small_vit(position)
    images = torch.rand(3, 8, 8)
    logits = model(images)
    assert logits.shape == (3, 10)
    # with the weights, attention runs the manual formula instead of the fused
    # kernel: the same logits up to rounding
    again, weights = model(images, return_attention=True)
    torch.testing.assert_close(again, logits, atol=1e-6, rtol=1e-5)
    assert len(weights) == 2
    for w in weights:
        assert w.shape == (3, 2, 17, 17)
        assert torch.allclose(w.sum(-1), torch.ones(3, 2, 17))


def test_vit_parameter_count_by_hand():
    model = small_vit("learned")
    d, f, n, k = 16, 24, 16, 10
    block = 2 * 2 * d + 4 * (d * d + d) + (d * f + f) + (f * d + d)
    expected = (4 * d + d) + d + (n + 1) * d + 2 * block + 2 * d + (d * k + k)
    assert count_parameters(model) == expected
    # the sinusoidal table is a buffer, not a parameter
    assert count_parameters(small_vit("sinusoidal_2d")) == expected - (n + 1) * d


def test_vit_input_sequence():
    model = small_vit("sinusoidal_2d")
    images = torch.rand(2, 8, 8)
    z0 = model.embed(images)
    assert z0.shape == (2, 17, 16)
    # the class token comes first, without position
    assert torch.equal(z0[:, 0], model.class_token[0].expand(2, -1))
    patches = model.patch_embedding(patchify(images, 2))
    assert torch.allclose(z0[:, 1:] - patches, sinusoidal_encoding_2d(4, 4, 16)[None])
    learned = small_vit("learned")
    z0 = learned.embed(images)
    table = learned.learned.embedding.weight
    assert torch.allclose(z0[:, 0], learned.class_token[0] + table[0])
    assert torch.allclose(
        z0[:, 1:], learned.patch_embedding(patchify(images, 2)) + table[1:]
    )


def test_vit_sinusoidal_positions_follow_the_patch_grid():
    # patch k of the 4x4 grid sits in row k // 4, column k % 4 (raster order, as
    # patchify cuts it); its position is [PE(row) || PE(column)] with the 1-D
    # encoding of d_model / 2 = 8 dimensions, built here without the 2-D helper
    model = small_vit("sinusoidal_2d")
    images = torch.zeros(1, 8, 8)
    positions = model.embed(images)[0, 1:] - model.patch_embedding.bias
    one_d = sinusoidal_encoding(4, 8)
    for k in range(16):
        row, column = divmod(k, 4)
        expected = torch.cat([one_d[row], one_d[column]])
        assert torch.allclose(positions[k], expected, atol=1e-6)
    # the ink of patch (r, c) = (1, 2) lands on token 1 + 4 * 1 + 2 = 7
    images[0, 2:4, 4:6] = 1.0
    changed = (model.embed(images) - model.embed(torch.zeros(1, 8, 8)))[0]
    assert changed.abs().sum(-1).nonzero().flatten().tolist() == [7]


def scramble(images, order):
    blocks = images.reshape(-1, 4, 2, 4, 2).transpose(2, 3).reshape(-1, 16, 2, 2)
    return blocks[:, order].reshape(-1, 4, 4, 2, 2).transpose(2, 3).reshape(-1, 8, 8)


def test_vit_without_positions_cannot_see_patch_order():
    images = torch.rand(4, 8, 8, generator=torch.Generator().manual_seed(1))
    order = torch.randperm(16, generator=torch.Generator().manual_seed(2))
    shuffled = scramble(images, order)
    assert torch.equal(patchify(shuffled, 2), patchify(images, 2)[:, order])
    blind = small_vit("none")
    assert torch.allclose(blind(images), blind(shuffled), atol=1e-5)
    for position in ("learned", "sinusoidal_2d"):
        model = small_vit(position)
        nn.init.normal_(model.class_token)
        if position == "learned":
            nn.init.normal_(model.learned.embedding.weight)
        assert not torch.allclose(model(images), model(shuffled), atol=1e-3)


def test_vit_accepts_channels():
    model = small_vit("learned", channels=3, image_size=8, patch_size=4)
    assert model(torch.rand(2, 3, 8, 8)).shape == (2, 10)
    assert model(torch.rand(2, 3, 8, 8), return_attention=True)[1][0].shape == (
        2,
        2,
        5,
        5,
    )


def test_vit_training_step_lowers_the_loss():
    model = small_vit("learned")
    g = torch.Generator().manual_seed(0)
    images, labels = torch.rand(32, 8, 8, generator=g), torch.arange(32) % 10

    def loss_fn(m, step):
        return F.cross_entropy(m(images), labels)

    before = loss_fn(model, 0).item()
    train(model, loss_fn, steps=5, lr=1e-2, progress=False)
    assert loss_fn(model, 0).item() < before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"image_size": 8, "patch_size": 3}, "not divisible by patch_size=3"),
        ({"position": "rope"}, "position must be one of"),
        (
            {"position": "sinusoidal_2d", "d_model": 18, "num_heads": 2},
            "d_model must be a multiple of 4",
        ),
        ({"position": "sinusoidal"}, "position must be one of"),
        ({"num_layers": 0}, "num_layers"),
        ({"channels": 0}, "channels"),
        ({"patch_size": True}, "patch_size must be a positive integer, got True"),
        ({"num_heads": 0}, "num_heads must be a positive integer"),
        ({"d_ff": 2.0}, "d_ff must be a positive integer"),
        ({"num_classes": 0}, "num_classes must be a positive integer"),
    ],
)
def test_vit_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        small_vit(**options)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(2, 6, 6), r"must have shape \(batch, 8, 8\)"),
        (torch.rand(2, 3, 8, 8), r"\(batch, 1, 8, 8\)"),
        (torch.rand(8, 8), "must have shape"),
        (torch.zeros(2, 8, 8, dtype=torch.long), "floating-point"),
        (torch.zeros(0, 8, 8), "with batch >= 1, got \\(0, 8, 8\\)"),
        (torch.full((2, 8, 8), float("nan")), "images contains NaN"),
        (
            torch.rand(2, 8, 8, dtype=torch.float64),
            "images has dtype torch.float64 but the module's weights are torch.float32",
        ),
        (torch.rand(2, 8, 8).half(), "images has dtype torch.float16"),
    ],
)
def test_vit_rejects_bad_images(images, message):
    with pytest.raises(ValueError, match=message):
        small_vit()(images)


def test_class_token_attention_hand_example():
    # one image, two heads, grid 2 (5 tokens); row 0 is the class token's
    weights = torch.zeros(1, 2, 5, 5)
    weights[0, 0, 0] = torch.tensor([0.2, 0.4, 0.0, 0.4, 0.0])
    weights[0, 1, 0] = torch.tensor([0.0, 0.0, 0.5, 0.5, 0.0])
    # mean over heads of tokens 1..4: [0.2, 0.25, 0.45, 0.0] on a 2x2 grid
    expected = torch.tensor([[[0.2, 0.25], [0.45, 0.0]]])
    assert torch.allclose(class_token_attention(weights, 2), expected)


def test_class_token_attention_of_a_model_sums_to_at_most_one():
    _, weights = small_vit()(torch.rand(3, 8, 8), return_attention=True)
    maps = class_token_attention(weights[-1], 4)
    assert maps.shape == (3, 4, 4)
    assert (maps.sum((1, 2)) <= 1 + 1e-6).all() and (maps >= 0).all()


@pytest.mark.parametrize(
    ("weights", "grid", "message"),
    [
        (torch.rand(1, 2, 5, 5), 4, r"\(batch, heads, 17, 17\) with heads >= 1"),
        (torch.rand(1, 0, 5, 5), 2, r"with heads >= 1 for grid=2, got \(1, 0, 5, 5\)"),
        (torch.rand(2, 5, 5), 2, "must have shape"),
        (torch.rand(1, 2, 5, 5), 0, "grid"),
        (torch.rand(1, 2, 5, 5), True, "grid must be a positive integer, got True"),
        (torch.ones(1, 2, 5, 5, dtype=torch.long), 2, "floating-point"),
    ],
)
def test_class_token_attention_rejects_bad_input(weights, grid, message):
    with pytest.raises(ValueError, match=message):
        class_token_attention(weights, grid)


def test_mlp_shapes_and_parameter_count():
    torch.manual_seed(0)
    mlp = MLPClassifier(64, (100, 100), 10)
    assert mlp(torch.rand(5, 8, 8)).shape == (5, 10)
    assert mlp(torch.rand(5, 64)).shape == (5, 10)
    assert count_parameters(mlp) == (64 * 100 + 100) + (100 * 100 + 100) + (
        100 * 10 + 10
    )
    assert count_parameters(MLPClassifier(4, (), 3)) == 4 * 3 + 3  # no hidden layer


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hidden_sizes": [100]}, "hidden_sizes must be a tuple of positive"),
        ({"hidden_sizes": (100, 0)}, r"hidden_sizes must be .* got \(100, 0\)"),
        ({"hidden_sizes": (True,)}, "hidden_sizes must be a tuple of positive"),
        ({"in_features": 0}, "in_features"),
        ({"num_classes": -1}, "num_classes"),
    ],
)
def test_mlp_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        MLPClassifier(**options)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(2, 7, 7), "64 numbers per image"),
        (torch.rand(64), "64 numbers per image"),
        (torch.full((2, 8, 8), float("inf")), "images contains NaN or infinite"),
        (
            torch.rand(2, 8, 8, dtype=torch.float64),
            "images has dtype torch.float64 but the module's weights are torch.float32",
        ),
        ([[0.0] * 64], "images must be a torch.Tensor"),
    ],
)
def test_mlp_rejects_bad_images(images, message):
    with pytest.raises(ValueError, match=message):
        MLPClassifier()(images)


def test_cnn_shapes_and_parameter_count_by_hand():
    torch.manual_seed(0)
    cnn = CNNClassifier()
    assert cnn(torch.rand(5, 8, 8)).shape == (5, 10)
    assert cnn(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    conv1 = 1 * 16 * 3 * 3 + 16
    conv2 = 16 * 32 * 3 * 3 + 32
    head = 32 * 4 * 4 * 10 + 10  # 32 maps of 4x4 after one 2x2 pooling
    assert count_parameters(cnn) == conv1 + conv2 + head == 9930
    colour = CNNClassifier(image_size=6, channels=3, widths=(4, 5), num_classes=2)
    assert colour(torch.rand(2, 3, 6, 6)).shape == (2, 2)


def test_cnn_equals_functional_reference():
    torch.manual_seed(0)
    cnn = CNNClassifier(image_size=6, widths=(3, 4), num_classes=5)
    images = torch.rand(2, 6, 6)
    conv1, conv2 = cnn.features[0], cnn.features[3]
    x = F.relu(F.conv2d(images[:, None], conv1.weight, conv1.bias, padding=1))
    x = F.max_pool2d(x, 2)
    x = F.relu(F.conv2d(x, conv2.weight, conv2.bias, padding=1))
    expected = x.flatten(1) @ cnn.head.weight.T + cnn.head.bias
    torch.testing.assert_close(cnn(images), expected)


def test_cnn_first_stage_is_translation_equivariant():
    """Shifting a digit that stays clear of the border by 2 pixels shifts the
    pooled first-stage feature maps by one cell: the same filter everywhere."""
    torch.manual_seed(0)
    stage = CNNClassifier().features[:3]  # conv, ReLU, 2x2 max-pool
    images = torch.zeros(3, 1, 8, 8)
    images[:, :, 2:6, 1:4] = torch.rand(3, 1, 4, 3)
    shifted = torch.roll(images, shifts=2, dims=3)  # columns 3..5, still inside
    with torch.no_grad():
        before, after = stage(images), stage(shifted)
    torch.testing.assert_close(after[..., 1:], before[..., :-1])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"widths": (16,)}, "widths must hold two channel counts"),
        ({"widths": [16, 32]}, "widths must be a tuple of positive"),
        ({"widths": (16, 0)}, "widths must be a tuple of positive"),
        ({"image_size": 7}, "image_size must be even"),
        ({"image_size": 0}, "image_size"),
        ({"channels": True}, "channels"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_cnn_rejects_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        CNNClassifier(**options)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (torch.rand(2, 6, 6), r"must have shape \(batch, 8, 8\)"),
        (torch.rand(2, 3, 8, 8), r"\(batch, 1, 8, 8\)"),
        (torch.zeros(0, 8, 8), "with batch >= 1, got \\(0, 8, 8\\)"),
        (torch.zeros(2, 8, 8, dtype=torch.long), "floating-point"),
        (torch.full((2, 8, 8), float("nan")), "images contains NaN"),
        (
            torch.rand(2, 8, 8, dtype=torch.float64),
            "images has dtype torch.float64 but the module's weights are torch.float32",
        ),
    ],
)
def test_cnn_rejects_bad_images(images, message):
    with pytest.raises(ValueError, match=message):
        CNNClassifier()(images)


def test_models_accept_float64_weights_and_images():
    images = torch.rand(2, 8, 8, dtype=torch.float64)
    assert small_vit().double()(images).dtype == torch.float64
    assert MLPClassifier().double()(images).dtype == torch.float64
    assert CNNClassifier().double()(images).dtype == torch.float64


class FirstPatchModel(nn.Module):
    """Two classes; the logit of class 0 is the sum of the top-left 2x2 patch."""

    def forward(self, images):
        s = images[:, :2, :2].sum((1, 2))
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def test_occlusion_effect_hand_example():
    images = torch.zeros(2, 4, 4)
    images[0, :2, :2] = 0.5  # patch 0 sums to 2
    images[1, 2:, 2:] = 1.0  # ink only in patch 3, which the model ignores
    labels = torch.tensor([0, 0])
    drops = occlusion_effect(FirstPatchModel(), images, labels, 2)
    assert drops.shape == (2, 2, 2)
    # image 0: p(class 0) = sigmoid(2) with the patch, 1/2 without it
    assert math.isclose(
        drops[0, 0, 0].item(), 1 / (1 + math.exp(-2)) - 0.5, rel_tol=1e-6
    )
    assert torch.count_nonzero(drops[0]) == 1
    # image 1: erasing any patch leaves the logits unchanged
    assert torch.equal(drops[1], torch.zeros(2, 2))


@pytest.mark.parametrize(
    ("images", "labels", "size", "message"),
    [
        (torch.zeros(2, 4, 4), torch.zeros(3, dtype=torch.long), 2, r"shape \(2,\)"),
        (torch.zeros(2, 4, 4), torch.zeros(2), 2, "labels must be an int64 or int32"),
        (torch.zeros(2, 4, 4), [0, 0], 2, "labels must be an int64 or int32"),
        (
            torch.zeros(2, 4, 4),
            torch.zeros(2, dtype=torch.uint8),
            2,
            "labels must be an int64 or int32 tensor, got torch.uint8",
        ),
        # the model has two classes
        (torch.zeros(2, 4, 4), torch.tensor([0, 5]), 2, r"labels must lie in \[0, 2\)"),
        (
            torch.zeros(2, 4, 4),
            torch.tensor([0, -1]),
            2,
            r"labels must lie in \[0, 2\)",
        ),
        (torch.zeros(2, 4, 4), torch.zeros(2, dtype=torch.long), True, "patch_size"),
        (
            torch.full((2, 4, 4), float("nan")),
            torch.zeros(2, dtype=torch.long),
            2,
            "images contains NaN",
        ),
        (torch.zeros(2, 4, 4), torch.zeros(2, dtype=torch.long), 3, "not divisible"),
        (torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long), 2, "3 axes"),
    ],
)
def test_occlusion_effect_rejects_bad_input(images, labels, size, message):
    with pytest.raises(ValueError, match=message):
        occlusion_effect(FirstPatchModel(), images, labels, size)


def test_occlusion_effect_restores_the_model_mode_and_takes_int32_labels():
    model = FirstPatchModel().train()
    images = torch.rand(2, 4, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1])
    drops = occlusion_effect(model, images, labels, 2)
    assert model.training
    assert torch.equal(occlusion_effect(model, images, labels.int(), 2), drops)
    model.eval()
    occlusion_effect(model, images, labels, 2)
    assert not model.training


def test_vision_makes_its_tensors_on_the_inputs_device():
    """CPU inputs give the same CPU results while the default device is "meta":
    every tensor the module makes follows its inputs (or the model's weights)."""
    vit, mlp, cnn = small_vit("learned"), MLPClassifier(), CNNClassifier()
    sinusoidal = small_vit("sinusoidal_2d")
    images = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([1, 2, 3])

    def run():
        logits, weights = vit(images, return_attention=True)
        return [
            logits,
            sinusoidal(images),
            mlp(images),
            cnn(images),
            patchify(images, 2),
            class_token_attention(weights[-1], 4),
            occlusion_effect(vit, images, labels, 4),
        ]

    expected = run()
    previous = torch.get_default_device()
    torch.set_default_device("meta")
    try:
        results = run()
    finally:
        torch.set_default_device(previous)
    for result, value in zip(results, expected, strict=True):
        assert result.device == images.device and torch.equal(result, value)


def test_mlp_on_an_empty_batch():
    assert MLPClassifier()(torch.zeros(0, 8, 8)).shape == (0, 10)
