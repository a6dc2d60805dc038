"""Tests of companion.plotting: the course style and heatmaps."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from companion.plotting import plot_heatmap


def test_plot_heatmap_draws_the_matrix():
    matrix = torch.arange(6.0).reshape(2, 3)
    ax = plot_heatmap(matrix, title="weights")
    (image,) = ax.get_images()
    assert np.array_equal(image.get_array(), matrix.numpy())
    assert ax.get_title() == "weights"
    assert ax.get_xlabel() == "keys" and ax.get_ylabel() == "queries"
    assert image.get_clim() == (0.0, 5.0)  # the matrix's own range by default
    plt.close(ax.figure)
    ax = plot_heatmap(matrix, vmin=-1, vmax=10)
    assert ax.get_images()[0].get_clim() == (-1, 10)
    plt.close(ax.figure)


@pytest.mark.parametrize("bad", [torch.ones(3), torch.ones(2, 2, 2), [[1.0]]])
def test_plot_heatmap_needs_a_matrix(bad):
    with pytest.raises(ValueError, match="plot_heatmap needs a 2-D tensor"):
        plot_heatmap(bad)


def _visible_ticks(axis, low, high):
    return [t for t in axis.get_majorticklocs() if low <= t <= high]


@pytest.mark.parametrize("shape", [(3, 5), (6, 6), (7, 12), (40, 64)])
def test_plot_heatmap_ticks_are_whole_indices(shape):
    # matplotlib's default locator labels the rows of a (3, 5) heatmap
    # 0.0, 0.5, 1.0, ... (a token position 0.5 does not exist).
    ax = plot_heatmap(torch.rand(*shape))
    ax.figure.canvas.draw()
    for axis, size in ((ax.xaxis, shape[1]), (ax.yaxis, shape[0])):
        ticks = _visible_ticks(axis, -0.5, size - 0.5)
        assert len(ticks) >= 2
        assert all(float(t).is_integer() for t in ticks), ticks
        labels = [label.get_text() for label in axis.get_ticklabels()]
        assert not any("." in text for text in labels if text), labels
    plt.close(ax.figure)


def test_plot_heatmap_extent_keeps_data_ticks():
    # With data coordinates (extent) the ticks follow the data, not indices.
    ax = plot_heatmap(torch.rand(4, 4), extent=(0.0, 1.0, 0.0, 1.0))
    ax.figure.canvas.draw()
    ticks = _visible_ticks(ax.xaxis, 0.0, 1.0)
    assert any(not float(t).is_integer() for t in ticks), ticks
    plt.close(ax.figure)
