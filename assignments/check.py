"""Check the assignment tests of chapters against their worked solutions.

    .venv/bin/python assignments/check.py 03_softmax/01_definition_and_properties ...

runs each chapter notebook top to bottom in a fresh kernel (without saving it), then
`companion.teaching.check_assignment` on its namespace: every test must pass on the
worked solutions and fail with its answers left unanswered. ``make test`` does the
same through the check cell at the end of every chapter; this script is for writing
tests without re-executing and saving the chapter.
"""

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def check(chapter: str) -> bool:
    path = ROOT / "notebooks" / f"{chapter}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    notebook.cells = [c for c in notebook.cells if "check_assignment" not in c.source]
    notebook.cells.append(
        nbformat.v4.new_code_cell(
            "from companion.teaching import check_assignment\n"
            f"check_assignment(globals(), {chapter!r})"
        )
    )
    client = NotebookClient(
        notebook, timeout=900, resources={"metadata": {"path": str(path.parent)}}
    )
    try:
        client.execute()
    except Exception as error:  # noqa: BLE001 (reported, then the next chapter)
        print(f"{chapter}: FAILED\n{error}")
        return False
    for output in notebook.cells[-1].outputs:
        print(f"{chapter}: {output.get('text', '').strip()}")
    return True


if __name__ == "__main__":
    results = [check(chapter.removesuffix(".ipynb")) for chapter in sys.argv[1:]]
    sys.exit(0 if all(results) else 1)
