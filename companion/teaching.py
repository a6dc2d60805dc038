"""Assignments with automatic feedback, built from the chapters' exercises.

The tests of an exercise are plain functions in ``assignments/<part>/<chapter>.py``
of a clone of the course, marked with `test` and the exercise's label. A test's
parameters name the variables it reads: the answers that the exercise's worked
solution assigns (the student version leaves those to the student) and, where
needed, variables the chapter made before. `check_assignment`, run at the end of
every chapter (so by nbval in ``make test``), proves the tests honest: each passes
on the chapter's worked solution and fails when its answers are left unanswered
(``...``, as in the student version). ``make assignments`` turns the same tests
into otter-grader assignments (``assignments/build.py``; the instructor's guide).
"""

import ast
import importlib.util
import inspect
import json
import re
from collections.abc import Callable
from pathlib import Path

from companion.validation import check_string

#: The repository of a clone of the course: its notebooks and assignment tests.
ROOT = Path(__file__).resolve().parents[1]
DIRECTIVE = re.compile(
    r"```\{(exercise|solution-start|solution-end)\}([^\n]*)\n(.*?)```", re.S
)


def test(exercise: str, hidden: bool = False) -> Callable[[Callable], Callable]:
    """Mark a function as a test of ``exercise`` (its label); ``hidden`` tests
    grade the submission but are not shown to the student."""
    check_string(exercise, "exercise")

    def mark(function: Callable) -> Callable:
        function.exercise, function.hidden = exercise, bool(hidden)
        return function

    return mark


test.__test__ = False  # a decorator, not a pytest test


def exercises(notebook: Path) -> dict[str, dict[str, list[str]]]:
    """The exercises of a chapter notebook, in order: label -> ``{"prompt": the
    exercise's text, "code": the worked solution's code cells, "text": its
    markdown}``."""
    found: dict[str, dict[str, list[str]]] = {}
    label = None
    inside = False
    cells = json.loads(Path(notebook).read_text())["cells"]
    for cell in cells:
        source = "".join(cell["source"])
        if cell["cell_type"] != "markdown":
            if inside and label is not None:
                found[label]["code"].append(source)
            continue
        position = 0
        for match in DIRECTIVE.finditer(source):
            if inside and label is not None:
                found[label]["text"].append(source[position : match.start()].strip())
            kind, body = match.group(1), match.group(3)
            if kind == "exercise":
                label = re.search(r":label:\s*(\S+)", body).group(1)
                prompt = re.sub(r"^:\w+:.*\n", "", body, flags=re.M).strip()
                title = match.group(2).strip()
                found[label] = {"title": [title], "prompt": [prompt]}
                found[label].update(code=[], text=[])
            inside = kind == "solution-start"
            position = match.end()
        if inside and label is not None:
            found[label]["text"].append(source[position:].strip())
    return found


def _assigned_names(code: list[str]) -> set[str]:
    """The names that the code cells ``code`` assign outside functions and classes
    (at their top level, or inside a top-level ``with``, ``if``, ``for`` or
    ``try`` block)."""
    names = set()
    for source in code:
        magic = ("%", "!")  # IPython lines are not Python
        lines = [line for line in source.splitlines() if not line.startswith(magic)]
        pending = list(ast.parse("\n".join(lines)).body)
        while pending:
            node = pending.pop()
            targets = []
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign | ast.For):
                targets = [node.target]
            elif isinstance(node, ast.FunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.With):
                targets = [i.optional_vars for i in node.items if i.optional_vars]
            if isinstance(node, ast.With | ast.If | ast.For | ast.Try):
                pending += node.body + getattr(node, "orelse", [])
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
    return names


def load_tests(chapter: str) -> list[Callable]:
    """The test functions of ``chapter`` (e.g. ``"03_softmax/01_definition"``), in
    the order they are defined in ``assignments/<chapter>.py``."""
    check_string(chapter, "chapter")
    path = ROOT / "assignments" / f"{chapter}.py"
    if not chapter or not path.is_file():
        raise ValueError(f"chapter {chapter!r} has no assignment tests: {path}")
    spec = importlib.util.spec_from_file_location(f"assignment_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tests = [f for f in vars(module).values() if hasattr(f, "exercise")]
    return sorted(tests, key=lambda f: f.__code__.co_firstlineno)


def answers_of(function: Callable, solution_code: list[str]) -> list[str]:
    """The parameters of the test ``function`` that its exercise's worked solution
    assigns: what the student must provide."""
    assigned = _assigned_names(solution_code)
    return [p for p in inspect.signature(function).parameters if p in assigned]


def check_assignment(namespace: dict, chapter: str) -> None:
    """Run the assignment tests of ``chapter`` on ``namespace`` (a chapter's
    globals after its worked solutions): each must pass, and each must fail with
    its answers replaced by ``...``. Prints a summary; raises AssertionError on a
    failing or vacuous test."""
    check_string(chapter, "chapter")
    if not isinstance(namespace, dict):
        raise ValueError(f"namespace must be a dict, got {type(namespace).__name__}")
    if not (ROOT / "assignments").is_dir():
        print("The assignment tests ship with a clone of the course.")
        return
    problems, tests = [], load_tests(chapter)
    book = exercises(ROOT / "notebooks" / f"{chapter}.ipynb")
    for function in tests:
        name = f"{function.exercise}: {function.__name__}"
        if function.exercise not in book:
            problems.append(f"{name} tests an exercise the chapter does not have")
            continue
        answers = answers_of(function, book[function.exercise]["code"])
        if not answers:
            problems.append(f"{name} reads no variable its worked solution assigns")
            continue
        params = inspect.signature(function).parameters
        arguments = {p: namespace[p] for p in params if p in namespace}
        if len(arguments) < len(params):
            problems.append(f"{name} reads variables the chapter lacks")
            continue
        try:
            function(**arguments)
        except Exception as error:  # noqa: BLE001 (any failure is reported)
            problems.append(f"{name} fails on the worked solution: {error!r}")
        try:
            function(**{**arguments, **dict.fromkeys(answers, ...)})
        except Exception:  # noqa: BLE001 (failing unanswered is the point)
            pass
        else:
            problems.append(f"{name} passes with its answers unanswered (vacuous)")
    tested = {f.exercise for f in tests}
    hidden = sum(f.hidden for f in tests)
    print(
        f"Assignment: {len(book)} questions, {len(tested)} with automatic tests "
        f"({len(tests)} tests, {hidden} hidden), {len(book) - len(tested)} written."
    )
    if problems:
        raise AssertionError("\n".join(problems))
    print("Every test passes on the worked solutions and fails unanswered.")
