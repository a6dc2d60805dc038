"""A small Vision Transformer on scikit-learn's handwritten digits (Part 6, chapter 3).

An image is cut into square patches (`patchify`), each patch is mapped linearly to
a vector, a learned class token is put in front, position embeddings are added,
and a stack of Transformer blocks reads the sequence; the class token's final
state gives the class (Dosovitskiy et al., 2021, "An Image is Worth 16x16
Words"). `MLPClassifier` (no image prior) and `CNNClassifier` (a convolutional image
prior) are the baselines the chapter compares it with;
`class_token_attention` and `occlusion_effect` are the two views of what the
model looks at. Generic helpers (parameter counts, accuracy) stay in the
notebook.
"""

import math

import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import Tensor, nn

from companion.models import TransformerBlock
from companion.positional import LearnedPositionalEmbedding, sinusoidal_encoding_2d
from companion.validation import (
    check_class_token_weights,
    check_finite,
    check_float_tensor,
    check_ids,
    check_image_patches,
    check_index,
    check_labelled_images,
    check_model_images,
    check_module_input,
    check_open_fraction,
    check_size_tuple,
    check_sizes,
    check_vit_options,
)

#: How the Vision Transformer learns where a patch is, in the names of
#: `companion.positional.SCHEMES`: a learned vector per position (as in the ViT
#: paper), the fixed 2-D sinusoidal encoding of Part 4, chapter 4, or nothing
#: (the patches become a bag).
VIT_POSITIONS = ("learned", "sinusoidal_2d", "none")


def digits_split(
    test_size: float = 0.2, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """scikit-learn's 1797 handwritten digits (Alpaydin & Kaynak, 1998), split.

    The 8x8 images (pixel values 0..16) ship with scikit-learn, so nothing is
    downloaded. They are scaled to [0, 1] and split into a training and a test
    set with the same share of each digit (stratified), fixed by ``seed``. The
    1797 digits were written by 13 people, and the split is random, so both sets
    hold digits of every writer (Part 6, chapter 3).

    Returns ``(train_images, train_labels, test_images, test_labels)``: images
    float32 of shape (n, 8, 8), labels int64 of shape (n,) with values 0..9, on
    the CPU.
    """
    check_open_fraction(test_size, "test_size")
    check_index(seed, 2**32, "seed")  # scikit-learn's random_state
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32, device="cpu") / 16.0
    labels = torch.tensor(digits.target, dtype=torch.int64, device="cpu")
    train_index, test_index = train_test_split(
        torch.arange(len(labels), device="cpu").numpy(),
        test_size=test_size,
        random_state=seed,
        stratify=labels.numpy(),
    )
    train_index = torch.from_numpy(train_index)
    test_index = torch.from_numpy(test_index)
    return (
        images[train_index],
        labels[train_index],
        images[test_index],
        labels[test_index],
    )


def patchify(images: Tensor, patch_size: int) -> Tensor:
    """Cut images into non-overlapping square patches, each flattened to a vector.

    Dosovitskiy et al. (2021, section 3.1) reshape an image ``x`` of size
    ``H x W x C`` into ``N = HW / P^2`` patches ``x_p`` of ``P^2 C`` numbers. The
    patches come in row-major (raster) order: patch ``(r, c)`` of the grid is
    number ``r * (W / P) + c``; within a patch the numbers are ordered by channel,
    then row, then column, as in ``torch.nn.functional.unfold`` (Part 6,
    chapter 3).

    Shapes: ``images`` (batch, H, W) or (batch, C, H, W), with H and W multiples
    of ``patch_size``; the result is (batch, N, C * patch_size**2).
    """
    check_image_patches(images, patch_size)
    if images.dim() == 3:
        images = images[:, None]
    batch, channels, height, width = images.shape
    rows, columns = height // patch_size, width // patch_size
    patches = images.reshape(
        batch, channels, rows, patch_size, columns, patch_size
    ).permute(0, 2, 4, 1, 3, 5)  # (batch, rows, columns, C, P, P)
    return patches.reshape(batch, rows * columns, channels * patch_size**2)


class VisionTransformer(nn.Module):
    """A Vision Transformer (ViT): patches as tokens, a class token, a Transformer.

    Dosovitskiy et al. (2021, eq. 1-4): ``z_0 = [x_class; x_p^1 E; ...; x_p^N E]
    + E_pos``, then ``L`` pre-norm blocks (`companion.models.TransformerBlock`,
    without positional scheme of its own: position was added to the input), a
    final layer norm, and a linear head on the class token's state,
    ``y = head(LN(z_L^0))``. ``position`` is ``"learned"`` (one vector per
    position, the class token's included, initialised with standard deviation
    0.02 as in the paper's code), ``"sinusoidal_2d"`` (the fixed
    `companion.positional.sinusoidal_encoding_2d` on the patch grid; nothing on
    the class token; ``d_model`` a multiple of 4) or ``"none"`` (Part 6,
    chapter 3).
    """

    def __init__(
        self,
        image_size: int = 8,
        patch_size: int = 2,
        num_classes: int = 10,
        channels: int = 1,
        d_model: int = 32,
        num_heads: int = 4,
        num_layers: int = 2,
        d_ff: int = 64,
        position: str = "learned",
    ):
        super().__init__()
        check_sizes(
            image_size=image_size,
            num_classes=num_classes,
            channels=channels,
            d_model=d_model,
            num_heads=num_heads,
            num_layers=num_layers,
            d_ff=d_ff,
        )
        check_vit_options(image_size, patch_size, position, VIT_POSITIONS)
        self.image_size, self.patch_size = image_size, patch_size
        self.channels = channels
        self.grid = image_size // patch_size
        self.num_patches = self.grid**2
        self.position = position
        self.patch_embedding = nn.Linear(channels * patch_size**2, d_model)
        self.class_token = nn.Parameter(torch.zeros(1, 1, d_model))
        self.learned = None
        if position == "learned":
            self.learned = LearnedPositionalEmbedding(self.num_patches + 1, d_model)
            nn.init.normal_(self.learned.embedding.weight, std=0.02)
        elif position == "sinusoidal_2d":  # refuses a d_model not divisible by 4
            self.register_buffer(
                "sinusoidal", sinusoidal_encoding_2d(self.grid, self.grid, d_model)
            )
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, num_heads, d_ff, position="none")
            for _ in range(num_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, num_classes)

    def embed(self, images: Tensor) -> Tensor:
        """The input sequence ``z_0``: class token and patch embeddings plus
        positions, of shape (batch, 1 + num_patches, d_model)."""
        self.check_inputs(images)
        x = self.patch_embedding(patchify(images, self.patch_size))
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.position == "learned":
            x = x + self.learned(self.num_patches + 1)
        elif self.position == "sinusoidal_2d":
            x = torch.cat([x[:, :1], x[:, 1:] + self.sinusoidal], dim=1)
        return x

    def forward(
        self, images: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Class logits of shape (batch, num_classes) for images of shape (batch,
        H, W) or (batch, C, H, W); with ``return_attention``, also the attention
        weights of every layer, each (batch, heads, 1 + N, 1 + N), the class
        token first."""
        x = self.embed(images)
        weights = []
        for block in self.blocks:
            x, w = block(x, need_weights=return_attention)
            weights.append(w)
        logits = self.head(self.norm(x[:, 0]))
        return (logits, weights) if return_attention else logits

    def check_inputs(self, images: object) -> None:
        """Raise unless ``images`` suit this model (`check_model_images`)."""
        check_model_images(
            images, self.patch_embedding.weight, self.channels, self.image_size
        )


def class_token_attention(weights: Tensor, grid: int) -> Tensor:
    """The class token's attention over the patches, averaged over the heads.

    ``weights`` (batch, heads, 1 + grid**2, 1 + grid**2) are one layer's
    attention weights with the class token first; the result, of shape (batch,
    grid, grid), is row 0 without its first entry (the class token attending to
    itself), laid out on the patch grid (Part 6, chapter 3). Each map sums to at
    most 1.
    """
    check_class_token_weights(weights, grid)
    return weights[:, :, 0, 1:].mean(dim=1).reshape(-1, grid, grid)


class MLPClassifier(nn.Module):
    """A multilayer perceptron on the flattened image: the baseline of Part 6,
    chapter 3. ``Linear -> ReLU`` for each hidden width, then a linear layer to
    the class logits."""

    def __init__(
        self,
        in_features: int = 64,
        hidden_sizes: tuple[int, ...] = (100, 100),
        num_classes: int = 10,
    ):
        super().__init__()
        check_sizes(in_features=in_features, num_classes=num_classes)
        check_size_tuple(hidden_sizes, "hidden_sizes")
        self.in_features = in_features
        layers, width = [], in_features
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, images: Tensor) -> Tensor:
        """Class logits (batch, num_classes) for images whose non-batch axes hold
        ``in_features`` numbers, e.g. (batch, 8, 8)."""
        self.check_inputs(images)
        return self.layers(images.reshape(images.shape[0], self.in_features))

    def check_inputs(self, images: object) -> None:
        """Raise unless ``images`` is a finite float tensor of the weights' dtype
        whose non-batch axes hold ``in_features`` numbers."""
        check_float_tensor(images, "images")
        check_module_input(images, self.layers[0].weight, "images")
        if images.dim() < 2 or math.prod(images.shape[1:]) != self.in_features:
            raise ValueError(
                f"images must have shape (batch, ...) with {self.in_features} "
                f"numbers per image, got {tuple(images.shape)}"
            )
        check_finite(images, "images")


class CNNClassifier(nn.Module):
    """A small convolutional network: the baseline *with* an image prior (Part 6,
    chapter 3).

    ``conv 3x3 (channels -> widths[0]) -> ReLU -> max-pool 2x2 -> conv 3x3
    (widths[0] -> widths[1]) -> ReLU -> linear`` on the flattened feature maps;
    the convolutions pad by 1, so only the pooling halves the image. A convolution
    applies the same small filter at every position: locality and translation
    equivariance are built in, the two assumptions the ViT leaves out
    (Dosovitskiy et al., 2021, section 3.1). With the defaults on 8x8
    digits it has 9,930 parameters. ``image_size`` must be even.
    """

    def __init__(
        self,
        image_size: int = 8,
        channels: int = 1,
        widths: tuple[int, int] = (16, 32),
        num_classes: int = 10,
    ):
        super().__init__()
        check_sizes(image_size=image_size, channels=channels, num_classes=num_classes)
        check_size_tuple(widths, "widths")
        if len(widths) != 2:
            raise ValueError(f"widths must hold two channel counts, got {widths!r}")
        if image_size % 2:
            raise ValueError(
                f"image_size must be even (one 2x2 pooling), got {image_size}"
            )
        self.image_size, self.channels = image_size, channels
        first, second = widths
        self.features = nn.Sequential(
            nn.Conv2d(channels, first, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(first, second, kernel_size=3, padding=1),
            nn.ReLU(),
        )
        self.head = nn.Linear(second * (image_size // 2) ** 2, num_classes)

    def forward(self, images: Tensor) -> Tensor:
        """Class logits (batch, num_classes) for images of shape (batch, H, W) or
        (batch, C, H, W)."""
        self.check_inputs(images)
        if images.dim() == 3:
            images = images[:, None]
        return self.head(self.features(images).flatten(1))

    def check_inputs(self, images: object) -> None:
        """Raise unless ``images`` suit this model (`check_model_images`)."""
        check_model_images(images, self.head.weight, self.channels, self.image_size)


def occlusion_effect(
    model: nn.Module, images: Tensor, labels: Tensor, patch_size: int
) -> Tensor:
    """How much erasing each patch lowers the probability of the true class.

    For every image and every patch of the grid, the patch is set to 0 (the
    background of the digits) and the drop ``p(y | x) - p(y | x without the
    patch)`` of the softmax probability of the true label ``y`` is recorded: a
    simple occlusion test of which patches the prediction depends on (Part 6,
    chapter 3). ``model`` maps images to class logits (batch, num_classes); it
    runs in evaluation mode and is put back in its mode afterwards. Shapes:
    ``images`` (batch, H, W), ``labels`` (batch,) in ``[0, num_classes)``; the
    result is (batch, H / patch_size, W / patch_size).
    """
    check_labelled_images(images, labels)
    check_image_patches(images, patch_size)
    batch, height, width = images.shape
    rows, columns = height // patch_size, width // patch_size
    index = labels[:, None].long()
    drops = images.new_empty(batch, rows * columns)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(images)
            check_ids(labels, logits.shape[-1], "labels")
            p_true = logits.softmax(dim=-1).gather(1, index)[:, 0]
            for k in range(rows * columns):
                r, c = divmod(k, columns)
                erased = images.clone()
                erased[
                    :,
                    r * patch_size : (r + 1) * patch_size,
                    c * patch_size : (c + 1) * patch_size,
                ] = 0.0
                p_erased = model(erased).softmax(dim=-1).gather(1, index)[:, 0]
                drops[:, k] = p_true - p_erased
    finally:
        model.train(was_training)
    return drops.reshape(batch, rows, columns)
