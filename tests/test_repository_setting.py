"""The book's repository setting: buttons that need an address only when it is set
(book/_ext/repository_setting.py)."""

import importlib.util
from pathlib import Path

EXTENSION = (
    Path(__file__).resolve().parents[1] / "book" / "_ext" / "repository_setting.py"
)
spec = importlib.util.spec_from_file_location("repository_setting", EXTENSION)
setting = importlib.util.module_from_spec(spec)
spec.loader.exec_module(setting)

OPTIONS = {
    "repository_url": "",
    "use_repository_button": False,
    "use_issues_button": False,
    "launch_buttons": {
        "notebook_interface": "jupyterlab",
        "binderhub_url": "https://mybinder.org",
        "colab_url": "https://colab.research.google.com",
        "thebe": False,
    },
}


def test_no_address_no_buttons():
    options = setting.theme_options(OPTIONS, "  ")
    assert options["repository_url"] == ""
    assert not options["use_repository_button"] and not options["use_issues_button"]
    assert options["launch_buttons"]["binderhub_url"] == ""
    assert options["launch_buttons"]["colab_url"] == ""
    assert options["launch_buttons"]["notebook_interface"] == "jupyterlab"
    assert OPTIONS["launch_buttons"]["colab_url"]  # the input is not changed


def test_an_address_keeps_the_buttons():
    options = setting.theme_options(OPTIONS, "https://github.com/someone/course")
    assert options["repository_url"] == "https://github.com/someone/course"
    assert options["use_repository_button"] and options["use_issues_button"]
    assert options["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
