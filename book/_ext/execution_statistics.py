"""A table of every notebook's run time, from numbers the test suite recorded.

The directive ``execution-statistics`` renders one row per notebook of the book:
its title (a link), the wall time nbval took to run it, the number of code cells,
whether every cell's output matched, when and on what machine it ran. The numbers
are never typed: `notebooks/conftest.py` records them during `pytest --nbval`.

Sources, first found wins for each notebook (``execution_statistics_sources``,
relative to the book's root):

1. `_build/execution_times.json`, written by the nbval step of `make test`;
2. `book/appendix/execution_times.json`, committed, refreshed by
   `make execution-times` (every notebook, one at a time).

Registered in `_config.yml` under ``sphinx: local_extensions``.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

DEFAULT_SOURCES = ["_build/execution_times.json", "book/appendix/execution_times.json"]
# How each source came to be: (command, what follows it in the sentence).
SOURCE_LABELS = {
    "_build/execution_times.json": (
        "make test",
        " (its last run on the machine that built this page)",
    ),
    "book/appendix/execution_times.json": (
        "make execution-times",
        " (committed with the book)",
    ),
}
HEADERS = ["Notebook", "Run time (s)", "Code cells", "Status", "Ran", "Date"]


def _read(path: Path) -> dict[str, dict] | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as error:
        logger.warning(f"execution statistics: {path} is not valid JSON ({error})")
        return None
    return document.get("notebooks", {})


def _paragraph(*children) -> nodes.paragraph:
    paragraph = nodes.paragraph()
    paragraph.extend(children)
    return paragraph


def _text_entry(text: str, nowrap: bool = False) -> nodes.entry:
    # text-nowrap: the theme's Bootstrap utility class, so a date stays on one line
    classes = ["text-nowrap"] if nowrap else []
    return nodes.entry("", nodes.paragraph(text=text), classes=classes)


def _when(stamp: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d")


def _run_mode(parallel: int) -> str:
    return "alone" if parallel <= 1 else f"{parallel} at a time"


class ExecutionStatistics(SphinxDirective):
    """``execution-statistics``: the table, its sources and the total."""

    has_content = False
    required_arguments = 0
    optional_arguments = 0

    def run(self) -> list[nodes.Node]:
        root = Path(self.env.srcdir)
        rows: dict[str, dict] = {}
        for source in self.config.execution_statistics_sources:
            path = root / source
            self.env.note_dependency(str(path))
            recorded = _read(path)
            if recorded is None:
                continue
            for notebook, row in recorded.items():
                rows.setdefault(notebook, {**row, "source": source})

        # Every notebook of the book gets a row, measured or not.
        for docname in sorted(self.env.found_docs):
            source_file = Path(self.env.doc2path(docname))
            if source_file.suffix == ".ipynb":
                rows.setdefault(source_file.relative_to(root).as_posix(), {})
        rows = {k: v for k, v in rows.items() if (root / k).is_file()}
        if not rows:
            logger.warning(
                "execution statistics: no notebook and no recorded times "
                f"(looked for {', '.join(self.config.execution_statistics_sources)})",
                location=self.get_location(),
            )
            return [_paragraph(nodes.Text("No notebook has been run yet."))]

        measured = [row for row in rows.values() if "seconds" in row]
        used = [
            source
            for source in self.config.execution_statistics_sources
            if any(row.get("source") == source for row in measured)
        ]
        machines = list(dict.fromkeys(row["machine"] for row in measured))
        keys = {machine: chr(ord("A") + i) for i, machine in enumerate(machines)}
        headers = HEADERS + (["Machine"] if len(machines) > 1 else [])

        body = nodes.tbody()
        for notebook, row in sorted(rows.items()):
            cells = [self._title(notebook)]
            if "seconds" in row:
                texts = [
                    f"{row['seconds']:.1f}",
                    str(row["cells"]),
                    row["status"],
                    _run_mode(int(row.get("parallel", 1))),
                    _when(row["date"]),
                ]
                if len(machines) > 1:
                    texts.append(keys[row["machine"]])
            else:
                texts = ["not measured"] + [""] * (len(headers) - 2)
            cells += [_text_entry(text, nowrap=True) for text in texts]
            body += nodes.row("", *cells)

        group = nodes.tgroup(cols=len(headers))
        group.extend(nodes.colspec(colwidth=1) for _ in headers)
        head = nodes.thead()
        head += nodes.row("", *(_text_entry(text) for text in headers))
        group += head
        group += body
        table = nodes.table("", group, classes=["execution-statistics"])

        total = sum(row["seconds"] for row in measured)
        failed = sum(row["status"] != "passed" for row in measured)
        summary = (
            f"{len(measured)} of {len(rows)} notebooks measured; "
            f"{total:.0f} s in all (the sum of the run times)"
        )
        if failed:
            summary += f"; {failed} failed (see Status)"
        result = [table, _paragraph(nodes.Text(summary + "."))]

        if len(machines) == 1:
            result.append(_paragraph(nodes.Text(f"Machine: {machines[0]}.")))
        elif machines:
            legend = nodes.bullet_list()
            for machine, key in keys.items():
                legend += nodes.list_item(
                    "", _paragraph(nodes.Text(f"{key}: {machine}"))
                )
            result += [_paragraph(nodes.Text("Machines:")), legend]

        provenance = _paragraph(nodes.Text("Recorded by "))
        for index, source in enumerate(used):
            command, rest = SOURCE_LABELS.get(source, (source, ""))
            if index:
                provenance += nodes.Text(" and, for the other notebooks, ")
            provenance += nodes.literal(text=command)
            provenance += nodes.Text(rest)
        provenance += nodes.Text(".")
        if used:
            result.append(provenance)
        return result

    def _title(self, notebook: str) -> nodes.entry:
        """The notebook's title linked to its page, else its file name."""
        docname = notebook[: -len(".ipynb")]
        if docname not in self.env.found_docs:
            return nodes.entry(
                "",
                _paragraph(
                    nodes.literal(text=Path(notebook).name),
                    nodes.Text(" (not in the book yet)"),
                ),
            )
        return nodes.entry("", _paragraph(doc_link(docname, self.env.docname)))


def doc_link(docname: str, from_docname: str) -> addnodes.pending_xref:
    """A link to the page ``docname`` showing its title, as ``{doc}`` makes."""
    return addnodes.pending_xref(
        "",
        nodes.inline(text=docname),
        refdomain="std",
        reftype="doc",
        reftarget="/" + docname,
        refexplicit=False,
        refwarn=True,
        refdoc=from_docname,
    )


def setup(app):
    app.add_config_value("execution_statistics_sources", DEFAULT_SOURCES, "env")
    app.add_directive("execution-statistics", ExecutionStatistics)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
