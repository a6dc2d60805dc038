"""Helpers for the chapter notebooks: a one-call setup and source display."""

import ast
import inspect
import textwrap

import numpy as np
import torch
from IPython.display import Markdown

from companion.plotting import use_style
from companion.training import seed_everything


def setup_notebook(seed: int = 0) -> None:
    """Make a chapter reproducible and readable in one call.

    Seeds Python, NumPy and PyTorch with ``seed``; uses one CPU thread, so
    that results do not depend on the thread count; prints 4 decimals; and
    applies the course's plotting style.
    """
    seed_everything(seed)
    torch.set_num_threads(1)
    torch.set_printoptions(precision=4, sci_mode=False)
    np.set_printoptions(precision=4, suppress=True)
    use_style()


def show_source(obj: object) -> Markdown:
    """Show the source code of a function or class from the package, highlighted,
    without its docstrings (the API appendix shows those), so that the listing
    is the guard line and the formula.

    The book displays the implementation this way rather than re-typing it,
    so the code on the page is always the code that runs.
    """
    try:
        source = textwrap.dedent(inspect.getsource(obj))
    except TypeError as error:
        raise ValueError(f"cannot show the source of {obj!r}: {error}") from None
    return Markdown(f"```python\n{without_docstrings(source).rstrip()}\n```")


def without_docstrings(source: str) -> str:
    """``source`` with the lines of every docstring removed (of the function or
    class it defines, and of their methods); everything else, comments included,
    is kept as written."""
    docstring_lines = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            docstring_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = source.splitlines()
    return "\n".join(
        line for number, line in enumerate(lines, 1) if number not in docstring_lines
    )
