"""The teaching kit: exercises read from a chapter, answers found in its worked
solution, tests that pass on the solution and fail unanswered, and the otter-grader
source notebook built from them (assignments/build.py)."""

import importlib.util
import json

import pytest

from companion import teaching
from companion.teaching import ROOT, answers_of, check_assignment, exercises, test

CHAPTER = "03_softmax/01_definition_and_properties"


def markdown(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text}


def code(text):
    return {"cell_type": "code", "metadata": {}, "source": text, "outputs": []}


@pytest.fixture
def chapter(tmp_path, monkeypatch):
    """A one-exercise chapter in a fake clone: notebook and tests."""
    notebook = {
        "cells": [
            markdown(
                "# A chapter\n\n## Exercises\n\n```{exercise} Square it\n"
                ":label: ex-square\n\nSquare `x0`.\n```\n\n"
                "```{solution-start} ex-square\n:class: dropdown\n```\nEasy:"
            ),
            code("square = x0**2\nprint(square)"),
            markdown(
                "```{solution-end}\n```\n\n```{exercise} Why?\n:label: ex-why\n\n"
                "Explain.\n```\n\n```{solution-start} ex-why\n:class: dropdown\n"
                "```\nBecause.\n\n```{solution-end}\n```"
            ),
        ]
    }
    (tmp_path / "notebooks" / "part").mkdir(parents=True)
    (tmp_path / "notebooks" / "part" / "one.ipynb").write_text(json.dumps(notebook))
    (tmp_path / "assignments" / "part").mkdir(parents=True)
    monkeypatch.setattr(teaching, "ROOT", tmp_path)
    return tmp_path


def write_tests(root, body):
    (root / "assignments" / "part" / "one.py").write_text(
        "from companion.teaching import test\n\n" + body
    )


def test_exercises_are_read_with_their_solutions(chapter):
    found = exercises(chapter / "notebooks" / "part" / "one.ipynb")
    assert list(found) == ["ex-square", "ex-why"]
    assert found["ex-square"]["title"] == ["Square it"]
    assert found["ex-square"]["prompt"] == ["Square `x0`."]
    assert found["ex-square"]["code"] == ["square = x0**2\nprint(square)"]
    assert found["ex-why"]["code"] == [] and "Because." in found["ex-why"]["text"]


def test_answers_are_the_parameters_the_solution_assigns():
    @test("ex-square")
    def check(square, x0):
        assert square == x0**2

    assert answers_of(check, ["square = x0**2"]) == ["square"]
    assert check.exercise == "ex-square" and check.hidden is False


def test_an_honest_test_passes_the_check(chapter, capsys):
    write_tests(
        chapter,
        "@test('ex-square')\ndef right(square, x0):\n"
        "    assert square == x0**2, 'square x0'\n",
    )
    check_assignment({"x0": 3, "square": 9}, "part/one")
    out = capsys.readouterr().out
    assert "2 questions, 1 with automatic tests (1 tests, 0 hidden), 1 written" in out
    assert "fails unanswered" in out


@pytest.mark.parametrize(
    "body, problem",
    [
        ("@test('ex-square')\ndef always(square):\n    assert True\n", "vacuous"),
        (
            "@test('ex-square')\ndef wrong(square):\n    assert square == 10\n",
            "fails on the worked solution",
        ),
        (
            "@test('ex-square')\ndef reads_input_only(x0):\n    assert x0 == 3\n",
            "reads no variable its worked solution assigns",
        ),
        (
            "@test('ex-nothing')\ndef elsewhere(square):\n    assert square\n",
            "does not have",
        ),
    ],
)
def test_dishonest_tests_are_refused(chapter, body, problem):
    write_tests(chapter, body)
    with pytest.raises(AssertionError, match=problem):
        check_assignment({"x0": 3, "square": 9}, "part/one")


def test_a_chapter_without_tests_is_named():
    with pytest.raises(ValueError, match="chapter 'no/such' has no assignment tests"):
        teaching.load_tests("no/such")


def load_build():
    spec = importlib.util.spec_from_file_location(
        "build", ROOT / "assignments" / "build.py"
    )
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    return build


def test_the_source_notebook_marks_solutions_and_tests():
    build = load_build()
    master = build.master_notebook(CHAPTER)
    sources = ["".join(c["source"]) for c in master["cells"]]
    assert sources[0].startswith("# ASSIGNMENT CONFIG")
    for label in ("ex-lse-gap", "ex-inverse"):
        start = sources.index(next(s for s in sources if f"name: {label}" in s))
        question = sources[start : sources.index("# END QUESTION", start)]
        assert "# BEGIN SOLUTION" in question and "# BEGIN TESTS" in question
    assert any("manual: true" in s for s in sources)  # the written question
    assert not any("{glue" in s or "{cite" in s for s in sources)  # plain Markdown
    assert not any("check_assignment" in s for s in sources)


def test_myst_becomes_plain_markdown():
    build = load_build()
    text = build.plain_markdown(
        "{glue:text}`x:.2f` by {cite:t}`devlin2019`, see {eq}`lab` and "
        "{doc}`Part 4 <../04/01>`.\n\n```{note} Mind\nthis\n```",
        {"x": 0.12345},
        {"devlin2019": ("Devlin et al.", "2019")},
    )
    assert text == (
        "0.12 by Devlin et al. (2019), see (lab) and Part 4.\n\n> **Mind**\n>\n> this"
    )


def test_the_unanswered_student_version_has_no_solution(tmp_path, monkeypatch):
    """otter assign, on the first assignment: the student version keeps `...`
    where the solutions were, and the tests travel with it."""
    build = load_build()
    monkeypatch.setattr(build, "OUT", tmp_path)
    result = build.build(CHAPTER)
    student = json.loads(
        (result / "student" / "01_definition_and_properties.ipynb").read_text()
    )
    cells = ["".join(c["source"]) for c in student["cells"]]
    assert not any("inverse_softmax(p, c=0.0)" in c for c in cells)
    assert cells.count("...") == 2
    assert set(student["metadata"]["otter"]["tests"]) == {"ex-lse-gap", "ex-inverse"}
    assert list((result / "autograder").glob("*-autograder_*.zip"))


def test_answers_assigned_inside_blocks_count():
    @test("ex-block")
    def check(before, after, inner):
        assert before != after

    solution = [
        "with torch.no_grad():\n    before, after = 1, 2\n"
        "def helper():\n    inner = 3\n"
    ]
    assert answers_of(check, solution) == ["before", "after"]


def test_every_chapter_with_exercises_has_an_assignment_that_it_checks():
    """An assignment file per chapter, and the chapter's last code cell runs its
    check (so nbval proves the tests honest in make test)."""
    for notebook in sorted((ROOT / "notebooks").glob("0[1-7]*/*.ipynb")):
        chapter = notebook.relative_to(ROOT / "notebooks").with_suffix("").as_posix()
        if not exercises(notebook):
            continue
        assert (ROOT / "assignments" / f"{chapter}.py").is_file(), chapter
        cells = json.loads(notebook.read_text())["cells"]
        last = "".join([c for c in cells if c["cell_type"] == "code"][-1]["source"])
        assert f'check_assignment(globals(), "{chapter}")' in last, chapter
