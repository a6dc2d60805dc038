"""Build the otter-grader assignments of every chapter: ``make assignments``.

For each chapter with tests in ``assignments/<part>/<chapter>.py``, this writes an
Otter Assign source notebook, ``_build/assignments/source/<part>/<chapter>.ipynb``:
the chapter's text and code up to its exercises (MyST roles turned into plain
Markdown, glued numbers filled in from the executed chapter), then each exercise as
a question. An exercise with tests becomes an autograded question whose solution is
the chapter's worked solution and whose test cells are the test functions (hidden
ones marked hidden); an exercise without tests becomes a written question graded by
hand, with the worked solution for the instructor. ``otter assign`` then writes
``_build/assignments/<part>/<chapter>/student/`` (solutions removed, public tests
inside) and ``.../autograder/`` (the solutions notebook and the autograder zip).

    .venv/bin/python assignments/build.py [part/chapter ...]
"""

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from companion.teaching import ROOT, answers_of, exercises, load_tests

OUT = ROOT / "_build" / "assignments"
BIB = ROOT / "book" / "references.bib"
CONFIG = """# ASSIGNMENT CONFIG
name: {name}
init_cell: true
check_all_cell: true
export_cell: false
run_tests: false
solutions_pdf: false
"""


def cell(kind: str, source: str, **extra) -> dict:
    """A notebook cell of ``kind`` (code, markdown, raw)."""
    made = {"cell_type": kind, "metadata": {}, "source": source.strip("\n")}
    if kind == "code":
        made.update(outputs=[], execution_count=None)
    return {**made, **extra}


def glued_values(notebook: dict) -> dict[str, object]:
    """The values the executed chapter glued, by name."""
    values = {}
    for c in notebook["cells"]:
        for output in c.get("outputs", []):
            record = output.get("metadata", {}).get("scrapbook")
            if record:
                text = output["data"][record["mime_prefix"] + "text/plain"]
                try:
                    values[record["name"]] = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    values[record["name"]] = text
    return values


def citations() -> dict[str, tuple[str, str]]:
    """Bibliography key -> (authors as cited, year)."""
    found = {}
    for entry in re.split(r"\n@", BIB.read_text()):
        key = re.match(r"@?\w+\{([^,]+),", entry)
        author = re.search(r"author\s*=\s*\{(.*?)\},?\n", entry, re.S)
        year = re.search(r"year\s*=\s*\{(\d+)\}", entry)
        if key and author and year:
            names = [
                n.split(",")[0].strip(" {}") for n in author.group(1).split(" and ")
            ]
            cited = names[0] if len(names) == 1 else f"{names[0]} et al."
            if len(names) == 2:
                cited = f"{names[0]} and {names[1]}"
            found[key.group(1).strip()] = (cited, year.group(1))
    return found


def plain_markdown(text: str, glued: dict, cited: dict) -> str:
    """``text`` with the MyST of the book turned into Markdown that Jupyter shows."""

    def glue(match: re.Match) -> str:
        name, _, spec = match.group(1).partition(":")
        value = glued.get(name, f"<{name}>")
        return format(value, "" if spec == "s" else spec)

    def cite(match: re.Match) -> str:
        keys = [k.strip() for k in match.group(2).split(",")]
        parts = [cited.get(k, (k, "")) for k in keys]
        if match.group(1) == ":t":
            return "; ".join(f"{a} ({y})" for a, y in parts)
        return "(" + "; ".join(f"{a}, {y}" for a, y in parts) + ")"

    text = re.sub(r"\{glue(?::text)?\}`([^`]+)`", glue, text)
    text = re.sub(r"\{cite(:t|:p)?\}`([^`]+)`", cite, text)
    text = re.sub(r"\{eq\}`([^`]+)`", r"(\1)", text)
    text = re.sub(r"\{(?:doc|ref|numref|term)\}`([^`<]+?)\s*<[^`]+>`", r"\1", text)
    text = re.sub(r"\{(?:doc|ref|numref|term)\}`([^`]+)`", r"\1", text)
    text = re.sub(r"^\([\w-]+\)=\s*$", "", text, flags=re.M)
    text = re.sub(r"\$\$\s*\((?P<l>[\w-]+)\)", "$$", text)  # labels of equations
    text = re.sub(r"^\$\$ \([\w-]+\)$", "$$", text, flags=re.M)

    def directive(match: re.Match) -> str:
        name, title, body = match.group(1), match.group(2).strip(), match.group(3)
        body = re.sub(r"^:[\w-]+:.*\n", "", body, flags=re.M).strip()
        if name == "math":
            return f"$$\n{body}\n$$"
        if name in ("figure", "image"):
            return ""
        if name in ("mermaid", "code-block", "code"):
            return f"```\n{body}\n```"
        quoted = "\n".join(f"> {line}" if line else ">" for line in body.splitlines())
        heading = title or name.capitalize()
        return f"> **{heading}**\n>\n{quoted}"

    return re.sub(r"```\{([\w-]+)\}([^\n]*)\n(.*?)```", directive, text, flags=re.S)


def test_cells(path: Path, tests: list) -> tuple[str, dict[str, str]]:
    """The module preamble of the tests at ``path`` (imports and helpers), and
    each test function's source without its decorator, by name."""
    source = path.read_text()
    module = ast.parse(source)
    preamble, functions = [], {}
    for node in module.body:
        segment = ast.get_source_segment(source, node)
        if isinstance(node, ast.FunctionDef) and node.decorator_list:
            functions[node.name] = segment
        elif isinstance(node, ast.ImportFrom) and node.module == "companion.teaching":
            continue
        elif not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)):
            preamble.append(segment)
    return "\n".join(preamble), functions


def master_notebook(chapter: str) -> dict:
    """The Otter Assign source notebook of ``chapter``."""
    path = ROOT / "notebooks" / f"{chapter}.ipynb"
    notebook = json.loads(path.read_text())
    glued, cited = glued_values(notebook), citations()
    book = exercises(path)
    tests = load_tests(chapter)
    preamble, sources = test_cells(ROOT / "assignments" / f"{chapter}.py", tests)
    name = chapter.replace("/", "-")
    cells = [cell("raw", CONFIG.format(name=name))]
    for c in notebook["cells"]:
        text = "".join(c["source"])
        if "check_assignment" in text:
            continue
        if c["cell_type"] == "markdown" and "## Exercises" in text:
            before = text.split("## Exercises")[0].strip()
            if before:
                cells.append(cell("markdown", plain_markdown(before, glued, cited)))
            break
        if c["cell_type"] == "code":
            cells.append(cell("code", text))
        else:
            cells.append(cell("markdown", plain_markdown(text, glued, cited)))
    cells.append(
        cell(
            "markdown",
            "## Questions\n\nRun the notebook from the top first: the questions use "
            "what the chapter's code builds. Replace each `...` with your code and "
            "run the `grader.check` cell below it for immediate feedback; written "
            "questions are graded by your instructor.",
        )
    )
    for label, exercise in book.items():
        own = [t for t in tests if t.exercise == label]
        title = exercise["title"][0]
        prompt = plain_markdown(exercise["prompt"][0], glued, cited)
        if own:
            answers = sorted({a for t in own for a in answers_of(t, exercise["code"])})
            names = ", ".join(f"`{a}`" for a in answers)
            cells += [
                cell("raw", f"# BEGIN QUESTION\nname: {label}\npoints: {len(own)}"),
                cell("markdown", f"### {title}\n\n{prompt}\n\n*Your answer:* {names}."),
            ]
            cells.append(cell("raw", "# BEGIN SOLUTION"))
            for code in exercise["code"]:
                cells.append(cell("code", f"# BEGIN SOLUTION\n{code}\n# END SOLUTION"))
            cells += [cell("raw", "# END SOLUTION"), cell("raw", "# BEGIN TESTS")]
            for t in own:
                params = ", ".join(f"{p}={p}" for p in _parameters(t))
                body = (
                    f"{preamble}\n\n\n{sources[t.__name__]}\n\n\n{t.__name__}({params})"
                )
                if t.hidden:
                    body = (
                        '""" # BEGIN TEST CONFIG\nhidden: true\n""" # END TEST CONFIG\n'
                        + body
                    )
                cells.append(cell("code", body))
            cells += [cell("raw", "# END TESTS"), cell("raw", "# END QUESTION")]
        else:
            solution = "\n\n".join(
                plain_markdown(t, glued, cited) for t in exercise["text"] if t
            )
            for code in exercise["code"]:
                solution += f"\n\n```python\n{code}\n```"
            cells += [
                cell(
                    "raw", f"# BEGIN QUESTION\nname: {label}\nmanual: true\npoints: 1"
                ),
                cell("markdown", f"### {title}\n\n{prompt}"),
                cell("raw", "# BEGIN SOLUTION"),
                cell("markdown", solution or "(See the book.)"),
                cell("raw", "# END SOLUTION"),
                cell("raw", "# END QUESTION"),
            ]
    return {
        "cells": cells,
        "metadata": notebook["metadata"],
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _parameters(test) -> list[str]:
    return list(test.__code__.co_varnames[: test.__code__.co_argcount])


def build(chapter: str) -> Path:
    """Write the source notebook of ``chapter`` and run ``otter assign`` on it."""
    source = OUT / "source" / f"{chapter}.ipynb"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(json.dumps(master_notebook(chapter), indent=1) + "\n")
    result = OUT / chapter
    otter = Path(sys.executable).parent / "otter"
    subprocess.run(
        [otter, "assign", "--no-run-tests", "--no-pdfs", source, result],
        check=True,
        capture_output=True,
    )
    return result


def chapters() -> list[str]:
    """Every chapter that has assignment tests, in the book's order."""
    found = sorted((ROOT / "assignments").glob("*/*.py"))
    return [str(p.relative_to(ROOT / "assignments").with_suffix("")) for p in found]


if __name__ == "__main__":
    for chapter in sys.argv[1:] or chapters():
        print(f"{chapter}: {textwrap.shorten(str(build(chapter)), 100)}")
