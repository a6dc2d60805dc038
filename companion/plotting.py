"""Plotting helpers shared by the chapters: one look for every figure."""

import matplotlib as mpl
import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator
from torch import Tensor

#: The matplotlib settings every chapter uses: modest dpi (small notebooks),
#: a colour-blind-safe colour cycle and colormap, readable fonts.
STYLE = {
    "figure.figsize": (6.4, 4.0),
    "figure.dpi": 80,
    "savefig.dpi": 80,
    "figure.constrained_layout.use": True,
    "font.size": 11,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "image.cmap": "viridis",
    "axes.prop_cycle": mpl.cycler(color=plt.colormaps["tab10"].colors),
}


def use_style() -> None:
    """Apply `STYLE` to matplotlib's global settings."""
    mpl.rcParams.update(STYLE)


def plot_heatmap(
    matrix: Tensor,
    ax: Axes | None = None,
    xlabel: str = "keys",
    ylabel: str = "queries",
    title: str | None = None,
    cmap: str = "viridis",
    colorbar: bool = True,
    extent: tuple[float, float, float, float] | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
) -> Axes:
    """Draw a 2-D matrix (e.g. attention weights, rows = queries) as a heatmap.

    ``extent`` = (left, right, bottom, top) labels the axes with data
    coordinates instead of indices; row 0 is drawn at the top unless ``extent``
    puts it elsewhere. Without ``extent`` the ticks are whole row and column
    indices (token positions), never 2.5. ``vmin`` and ``vmax`` fix the colour
    scale (to compare several heatmaps); by default it spans the matrix.
    Returns the axes it drew on.
    """
    if not isinstance(matrix, Tensor) or matrix.dim() != 2:
        shape = (
            tuple(matrix.shape) if isinstance(matrix, Tensor) else type(matrix).__name__
        )
        raise ValueError(f"plot_heatmap needs a 2-D tensor, got {shape}")
    if ax is None:
        _, ax = plt.subplots()
    image = ax.imshow(
        matrix.detach().to(torch.float32).cpu().numpy(),
        cmap=cmap,
        aspect="auto",
        interpolation="nearest",
        extent=extent,
        vmin=vmin,
        vmax=vmax,
    )
    if extent is None:  # indices: integer ticks only (a position 2.5 does not exist)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(False)
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax)
    return ax
