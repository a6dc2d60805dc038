import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from companion.notebook import setup_notebook, show_source
from companion.plotting import STYLE, plot_heatmap
from companion.softmax import softmax


def test_setup_notebook_is_reproducible():
    setup_notebook(seed=7)
    first = (torch.rand(3), np.random.rand(3))  # noqa: NPY002
    setup_notebook(seed=7)
    second = (torch.rand(3), np.random.rand(3))  # noqa: NPY002
    assert torch.equal(first[0], second[0])
    assert np.array_equal(first[1], second[1])
    assert torch.get_num_threads() == 1
    assert matplotlib.rcParams["image.cmap"] == STYLE["image.cmap"]


def test_show_source_shows_the_package_code():
    shown = show_source(softmax)
    assert shown.data.startswith("```python\ndef softmax(")
    assert "return e / torch.where" in shown.data
    assert shown.data.endswith("\n```")


def test_show_source_rejects_builtins():
    with pytest.raises(
        ValueError, match="cannot show the source of <built-in function len>"
    ):
        show_source(len)


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
