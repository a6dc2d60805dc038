"""Record how long each notebook takes when nbval runs it.

A pytest plugin for `pytest --nbval notebooks` (`make nbval`, part of `make test`, and
`make execution-times`). For each notebook it keeps the wall time from the start of
its first cell's setup (nbval starts the kernel there) to the end of its last cell's
teardown (the kernel stops there), the number of code cells run, whether every cell
passed, and a description of the machine. At the end of the session the numbers are
merged into a JSON file, by default `_build/execution_times.json`; `--execution-times
PATH` writes elsewhere. The book's "Execution statistics" appendix renders that file
(or, before any test run, the committed `book/appendix/execution_times.json`).

Under pytest-xdist (`-n 2 --dist loadfile`) every cell's report reaches the
controller, which alone records and writes; the workers do nothing here.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
from importlib import metadata
from pathlib import Path

import pytest

DEFAULT_OUTPUT = "_build/execution_times.json"
SCHEMA = 1


def pytest_addoption(parser):
    parser.addoption(
        "--execution-times",
        metavar="PATH",
        default=DEFAULT_OUTPUT,
        help="where to record each notebook's run time under nbval "
        f"(relative to the rootdir; default {DEFAULT_OUTPUT})",
    )


def pytest_configure(config):
    if hasattr(
        config, "workerinput"
    ):  # an xdist worker: its reports go to the controller
        return
    output = config.rootpath / config.getoption("execution_times")
    config.pluginmanager.register(ExecutionTimes(config, output), "execution-times")


def machine_description() -> str:
    """CPU, cores, memory, OS, Python and torch: what a run time depends on."""
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = f"{line.split(':', 1)[1].strip()} ({platform.machine()})"
                    break
    except OSError:
        pass
    cores = os.cpu_count()
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        memory_text = f", {memory:.0f} GiB"
    except (ValueError, OSError, AttributeError):
        memory_text = ""
    try:
        torch = f", torch {metadata.version('torch')}"
    except metadata.PackageNotFoundError:
        torch = ""
    return (
        f"{cpu}, {cores} cores{memory_text}; {platform.system()}; "
        f"Python {platform.python_version()}{torch}"
    )


def parallel_notebooks(config) -> int:
    """How many notebooks ran at the same time (pytest-xdist workers, else 1)."""
    workers = getattr(config.option, "numprocesses", None)
    if not workers or getattr(config.option, "dist", "no") == "no":
        return 1
    return int(workers)


class ExecutionTimes:
    def __init__(self, config, output: Path):
        self.config = config
        self.output = output
        self.runs: dict[str, dict] = {}
        self.written = 0

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report):
        notebook, separator, _ = report.nodeid.partition("::")
        if not separator or not notebook.endswith(".ipynb"):
            return
        run = self.runs.setdefault(
            notebook,
            {"start": report.start, "stop": report.stop, "cells": set(), "failed": 0},
        )
        run["start"] = min(run["start"], report.start)
        run["stop"] = max(run["stop"], report.stop)
        run["cells"].add(report.nodeid)
        if report.failed:
            run["failed"] += 1

    @pytest.hookimpl
    def pytest_sessionfinish(self, session, exitstatus):
        if not self.runs or exitstatus == pytest.ExitCode.INTERRUPTED:
            return
        root = self.config.rootpath
        try:
            recorded = json.loads(self.output.read_text(encoding="utf-8"))["notebooks"]
        except (OSError, ValueError, KeyError):
            recorded = {}
        # Forget notebooks that no longer exist; keep the others' earlier numbers.
        notebooks = {
            name: row for name, row in recorded.items() if (root / name).is_file()
        }
        machine = machine_description()
        parallel = parallel_notebooks(self.config)
        for name, run in self.runs.items():
            notebooks[name] = {
                "seconds": round(run["stop"] - run["start"], 2),
                "cells": len(run["cells"]),
                "status": "failed" if run["failed"] else "passed",
                "date": datetime.datetime.fromtimestamp(
                    run["stop"], datetime.timezone.utc
                )
                .isoformat(timespec="seconds")
                .replace("+00:00", "Z"),
                "parallel": parallel,
                "machine": machine,
            }
        document = {"schema": SCHEMA, "notebooks": dict(sorted(notebooks.items()))}
        self.output.parent.mkdir(parents=True, exist_ok=True)
        partial = self.output.with_name(self.output.name + ".partial")
        partial.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
        partial.replace(self.output)
        self.written = len(self.runs)

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter):
        if self.written:
            terminalreporter.write_line(
                f"run times of {self.written} notebook(s) written to {self.output}"
            )
