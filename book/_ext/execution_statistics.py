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
from edition import in_language
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
# The Chinese edition's wording of the generated text.
CHINESE = {
    "Run time (s)": "运行时间（秒）",
    "Code cells": "代码单元",
    "Status": "状态",
    "Ran": "运行方式",
    "Date": "日期",
    "Machine": "机器",
    "passed": "通过",
    "failed": "失败",
    "alone": "单独运行",
    "{n} at a time": "{n} 个同时运行",
    "not measured": "未测量",
    " (not in the book yet)": "（尚未收入本书）",
    "No notebook has been run yet.": "还没有运行过任何 notebook。",
    "{measured} of {rows} notebooks measured; {total:.0f} s in all (the sum of the "
    "run times)": "{rows} 个 notebook 中已测量 {measured} 个；共 {total:.0f} 秒"
    "（各运行时间之和）",
    "; {failed} failed (see Status)": "；{failed} 个失败（见“状态”列）",
    ".": "。",
    "Machine: {machine}.": "机器：{machine}。",
    "Machines:": "机器：",
    "Recorded by ": "数据来自 ",
    " and, for the other notebooks, ": "，其余 notebook 的数据来自 ",
    " (its last run on the machine that built this page)":
        "（构建本页的机器上最近一次运行）",
    " (committed with the book)": "（随书提交）",
}


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
    # Written in the edition's language here, so not a message for the catalogues.
    paragraph = nodes.paragraph(translatable=False)
    paragraph.extend(children)
    return paragraph


def _text_entry(text: str, nowrap: bool = False) -> nodes.entry:
    # text-nowrap: the theme's Bootstrap utility class, so a date stays on one line
    classes = ["text-nowrap"] if nowrap else []
    return nodes.entry("", _paragraph(nodes.Text(text)), classes=classes)


def _when(stamp: str) -> str:
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d")




class ExecutionStatistics(SphinxDirective):
    """``execution-statistics``: the table, its sources and the total."""

    has_content = False
    required_arguments = 0
    optional_arguments = 0

    def say(self, english: str, **values) -> str:
        return in_language(self.config.language, english, CHINESE).format(**values)

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
            return [_paragraph(nodes.Text(self.say("No notebook has been run yet.")))]

        measured = [row for row in rows.values() if "seconds" in row]
        used = [
            source
            for source in self.config.execution_statistics_sources
            if any(row.get("source") == source for row in measured)
        ]
        machines = list(dict.fromkeys(row["machine"] for row in measured))
        keys = {machine: chr(ord("A") + i) for i, machine in enumerate(machines)}
        headers = HEADERS + (["Machine"] if len(machines) > 1 else [])
        headers = [self.say(header) for header in headers]

        body = nodes.tbody()
        for notebook, row in sorted(rows.items()):
            cells = [self._title(notebook)]
            if "seconds" in row:
                texts = [
                    f"{row['seconds']:.1f}",
                    str(row["cells"]),
                    self.say(row["status"]),
                    self.say("alone") if int(row.get("parallel", 1)) <= 1
                    else self.say("{n} at a time", n=row["parallel"]),
                    _when(row["date"]),
                ]
                if len(machines) > 1:
                    texts.append(keys[row["machine"]])
            else:
                texts = [self.say("not measured")] + [""] * (len(headers) - 2)
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
        summary = self.say(
            "{measured} of {rows} notebooks measured; {total:.0f} s in all (the sum of "
            "the run times)", measured=len(measured), rows=len(rows), total=total
        )
        if failed:
            summary += self.say("; {failed} failed (see Status)", failed=failed)
        result = [table, _paragraph(nodes.Text(summary + self.say(".")))]

        if len(machines) == 1:
            machine = self.say("Machine: {machine}.", machine=machines[0])
            result.append(_paragraph(nodes.Text(machine)))
        elif machines:
            legend = nodes.bullet_list()
            for machine, key in keys.items():
                legend += nodes.list_item(
                    "", _paragraph(nodes.Text(f"{key}: {machine}"))
                )
            result += [_paragraph(nodes.Text(self.say("Machines:"))), legend]

        provenance = _paragraph(nodes.Text(self.say("Recorded by ")))
        for index, source in enumerate(used):
            command, rest = SOURCE_LABELS.get(source, (source, ""))
            if index:
                provenance += nodes.Text(self.say(" and, for the other notebooks, "))
            provenance += nodes.literal(text=command)
            provenance += nodes.Text(self.say(rest))
        provenance += nodes.Text(self.say("."))
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
                    nodes.Text(self.say(" (not in the book yet)")),
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
