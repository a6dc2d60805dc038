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
