import json
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from companion.notebook import setup_notebook, show_source
from companion.plotting import STYLE
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
    assert "return (e / total.clamp_min(" in shown.data
    assert '"""' not in shown.data  # the docstring stays in the API appendix
    assert shown.data.endswith("\n```")


def test_show_source_rejects_builtins():
    with pytest.raises(
        ValueError, match="cannot show the source of <built-in function len>"
    ):
        show_source(len)


def test_no_notebook_glues_a_name_twice():
    # A second glue() of a name silently replaces the value the prose shows.
    root = Path(__file__).resolve().parent.parent / "notebooks"
    repeated = {}
    for path in sorted(root.glob("*/*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        names = Counter(
            output["metadata"]["scrapbook"]["name"]
            for cell in cells
            for output in cell.get("outputs", [])
            if "scrapbook" in output.get("metadata", {})
        )
        twice = sorted(name for name, count in names.items() if count > 1)
        if twice:
            repeated[path.name] = twice
    assert repeated == {}
