"""Helpers for the chapter notebooks: a one-call setup and source display."""

import inspect
import random

import numpy as np
import torch
from IPython.display import Markdown

from companion.plotting import use_style


def setup_notebook(seed: int = 0) -> None:
    """Make a chapter reproducible and readable in one call.

    Seeds Python, NumPy and PyTorch with ``seed``; uses one CPU thread, so
    that results do not depend on the thread count; prints 4 decimals; and
    applies the course's plotting style.
    """
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (seed the legacy global generator too)
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    torch.set_printoptions(precision=4, sci_mode=False)
    np.set_printoptions(precision=4, suppress=True)
    use_style()


def show_source(obj: object) -> Markdown:
    """Show the source code of a function or class from the package, highlighted.

    The book displays the implementation this way rather than re-typing it,
    so the code on the page is always the code that runs.
    """
    try:
        source = inspect.getsource(obj)
    except TypeError as error:
        raise ValueError(f"cannot show the source of {obj!r}: {error}") from None
    return Markdown(f"```python\n{source.rstrip()}\n```")
