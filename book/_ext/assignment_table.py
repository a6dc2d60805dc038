"""A table of the assignments: per chapter, its questions and their tests.

The directive ``assignment-table`` renders one row per chapter with exercises: the
chapter (a link), its questions, how many are autograded and with how many tests
(hidden ones in brackets), how many are written. The numbers are read from the
chapters and from ``assignments/<part>/<chapter>.py`` by `companion.teaching`, the
code that checks the tests, so they are never typed.

Registered in `_config.yml` under ``sphinx: local_extensions``.
"""

from __future__ import annotations

from pathlib import Path

from docutils import nodes
from edition import in_language
from execution_statistics import doc_link
from sphinx.util.docutils import SphinxDirective

from companion.teaching import exercises, load_tests

HEADERS = ["Chapter", "Questions", "Autograded", "Tests (hidden)", "Written"]
SUMMARY = (
    "In all: {0} questions, {1} autograded with {2} tests ({3} hidden), {4} written."
)
# The Chinese edition's wording of the generated text.
CHINESE = {
    "Chapter": "章节",
    "Questions": "题目",
    "Autograded": "自动评分",
    "Tests (hidden)": "测试（隐藏）",
    "Written": "书面作答",
    SUMMARY: "合计：{0} 道题，其中 {1} 道自动评分，共 {2} 个测试（{3} 个隐藏），"
    "{4} 道书面作答。",
}


def _paragraph(*children: nodes.Node) -> nodes.paragraph:
    # Written in the edition's language here, so not a message for the catalogues.
    paragraph = nodes.paragraph(translatable=False)
    paragraph.extend(children)
    return paragraph


def _entry(*children: nodes.Node) -> nodes.entry:
    paragraph = _paragraph()
    paragraph.extend(children)
    return nodes.entry("", paragraph)


class AssignmentTable(SphinxDirective):
    """``assignment-table``: the table and its totals."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        root = Path(self.env.srcdir)
        body, totals = nodes.tbody(), [0, 0, 0, 0, 0]
        for docname in sorted(self.env.found_docs):
            notebook = root / f"{docname}.ipynb"
            tests_file = (
                root / "assignments" / f"{docname.removeprefix('notebooks/')}.py"
            )
            if not notebook.is_file():
                continue
            self.env.note_dependency(str(notebook))
            book = exercises(notebook)
            if not book:
                continue
            tests = []
            if tests_file.is_file():
                self.env.note_dependency(str(tests_file))
                tests = load_tests(docname.removeprefix("notebooks/"))
            tested = {t.exercise for t in tests}
            hidden = sum(t.hidden for t in tests)
            counts = [
                len(book),
                len(tested),
                len(tests),
                hidden,
                len(book) - len(tested),
            ]
            totals = [a + b for a, b in zip(totals, counts, strict=True)]
            link = doc_link(docname, self.env.docname)
            texts = [
                str(counts[0]),
                str(counts[1]),
                f"{counts[2]} ({counts[3]})",
                str(counts[4]),
            ]
            body += nodes.row("", _entry(link), *(_entry(nodes.Text(t)) for t in texts))
        group = nodes.tgroup(cols=len(HEADERS))
        group.extend(nodes.colspec(colwidth=1) for _ in HEADERS)
        head = nodes.thead()
        language = self.config.language
        headers = [in_language(language, header, CHINESE) for header in HEADERS]
        head += nodes.row("", *(_entry(nodes.Text(header)) for header in headers))
        group += head
        group += body
        summary = in_language(language, SUMMARY, CHINESE).format(*totals)
        table = nodes.table("", group, classes=["assignment-table"])
        return [table, _paragraph(nodes.Text(summary))]


def setup(app):
    app.add_directive("assignment-table", AssignmentTable)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
