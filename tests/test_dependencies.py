"""pyproject.toml declares every third-party module that companion imports, so that
`pip install .` outside this repository gives a working package."""

import ast
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+


ROOT = Path(__file__).resolve().parents[1]
#: Distribution names whose import name differs.
IMPORT_NAMES = {"scikit-learn": "sklearn", "ipython": "IPython"}


def imported_top_level_modules() -> set[str]:
    modules = set()
    for path in (ROOT / "companion").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"companion"}


def test_every_imported_module_is_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set()
    for requirement in project["dependencies"]:
        name = requirement.split(">")[0].split("=")[0].split("<")[0].strip().lower()
        declared.add(IMPORT_NAMES.get(name, name))
    imported = imported_top_level_modules()
    assert {"torch", "tqdm", "sklearn", "IPython"} <= imported  # the scan works
    assert imported <= declared, f"undeclared: {sorted(imported - declared)}"


def test_every_package_is_listed():
    """Subpackages (companion.tasks) must be listed for setuptools to install them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    packages = set(project["tool"]["setuptools"]["packages"])
    found = {
        ".".join(path.parent.relative_to(ROOT).parts)
        for path in (ROOT / "companion").rglob("__init__.py")
    }
    assert found == packages
