"""Repository, issues and launch buttons only when the course has a public address.

The address is one setting: ``repository: url:`` in ``_config.yml``, or the
environment variable ``COURSE_REPOSITORY``, which overrides it (e.g.
``COURSE_REPOSITORY=https://github.com/you/course make book``). When neither is set,
the book shows no repository, issues, Binder or Colab button, rather than buttons
that lead to a page that does not exist.

Registered in `_config.yml` under ``sphinx: local_extensions``.
"""

from __future__ import annotations

import os


def theme_options(options: dict, address: str) -> dict:
    """``options`` (sphinx-book-theme's) with ``address`` as the repository and the
    buttons that need one switched off when it is empty."""
    options = dict(options)
    address = address.strip()
    options["repository_url"] = address
    options["use_repository_button"] = options["use_issues_button"] = bool(address)
    if not address:
        options["use_edit_page_button"] = False
        launch = dict(options.get("launch_buttons", {}))
        for key in launch:
            if key.endswith("_url"):
                launch[key] = ""
        launch["thebe"] = False
        options["launch_buttons"] = launch
    return options


def apply_setting(app, config) -> None:
    options = config.html_theme_options
    address = os.environ.get("COURSE_REPOSITORY", options.get("repository_url", ""))
    config.html_theme_options = theme_options(options, address)


def setup(app):
    app.connect("config-inited", apply_setting)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
