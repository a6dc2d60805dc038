"""Drop inline scripts that Sphinx 7.4 writes twice into every page.

`Sphinx.add_js_file(None, body=...)` called after the HTML builder starts (as
sphinx-thebe and sphinx-togglebutton do) registers the script once as filename
`None` and once more, from the registry, as filename `''`; the two compare unequal,
so each page gets the script twice. For sphinx-thebe's `const THEBE_JS_URL = ...`
the second copy is a SyntaxError in the reader's console on every page. Fixed in
Sphinx 8.2.2 (sphinx-doc/sphinx#13402); until the book moves to such a Sphinx,
this keeps the first copy of each script (found by `make browser`).
"""

from __future__ import annotations


def _key(script) -> tuple:
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {})
    return (filename, tuple(sorted((k, str(v)) for k, v in attributes.items())))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.connect("html-page-context", drop_duplicate_scripts)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
