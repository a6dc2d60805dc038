"""The book in two languages: links between the editions, and translated notebooks.

The English edition is built into ``_build/html/`` and the Chinese one, from the
same executed notebooks and the catalogues in ``locale/zh_CN/``, into
``_build/html/zh/`` (see ``book/translations.py`` and the Makefile). This
extension

- puts a link to the same page in the other edition in every page's header
  (and ``<link rel="alternate" hreflang>`` in its head);
- gives the role ``{other-edition}`text``` for a link in running text;
- lets translated paragraphs of notebook pages paste glued numbers: Sphinx parses a
  translated message as a small document of its own, which does not hold the
  notebook's glue data, so ``{glue:text}`key``` would paste nothing. The message is
  parsed with the key qualified by its notebook (``{glue:text}`page.ipynb::key```),
  which myst-nb resolves from its glue cache after reading;
- translates the table of contents' part captions, which the external table of
  contents inserts after Sphinx translated the page;
- gives the other extensions ``in_language`` for the text they generate.

Registered in `_config.yml` under ``sphinx: local_extensions``.
"""

from __future__ import annotations

import re
from pathlib import Path

import sphinx.transforms.i18n
from docutils import nodes
from sphinx import addnodes
from sphinx.locale import init as init_locale
from sphinx.util.i18n import docname_to_domain

# The editions: Sphinx language, folder under _build/html, hreflang, link label.
EDITIONS = {
    "en": ("", "en", "English"),
    "zh_CN": ("zh", "zh-CN", "中文"),
}
GLUE_ROLE = re.compile(r"\{(glue(?::\w+)?)\}`([^`:]+(?::[^`:]*)?)`")


def edition_of(language: str | None) -> str:
    return "zh_CN" if (language or "en").startswith("zh") else "en"


def other_edition(language: str | None) -> str:
    return "en" if edition_of(language) == "zh_CN" else "zh_CN"


def other_edition_url(language: str | None, pagename: str) -> str:
    """Relative URL of ``pagename`` in the other edition, from that page in this one."""
    up = "../" * (pagename.count("/") + bool(EDITIONS[edition_of(language)][0]))
    folder = EDITIONS[other_edition(language)][0]
    return f"{up}{folder + '/' if folder else ''}{pagename}.html"


def in_language(language: str | None, english: str, chinese: dict[str, str]) -> str:
    """Text that an extension generates (a table's headers, a total), in the edition's
    language. Such text is not in the catalogues: its numbers change with every run."""
    return chinese.get(english, english) if edition_of(language) == "zh_CN" else english


def qualified_glue_keys(source: str, source_path: str) -> str:
    """``{glue:text}`key``` in a translated message of a notebook, with its notebook."""
    if not source_path.endswith(".ipynb"):
        return source
    notebook = Path(source_path).name

    def qualified(match: re.Match) -> str:
        role, key = match.groups()
        if role == "glue:text" and ":" not in key:
            key += ":s"  # else the qualified key's last ":" would be read as a format
        return f"{{{role}}}`{notebook}::{key}`"

    return GLUE_ROLE.sub(qualified, source)


_publish_msgstr = sphinx.transforms.i18n.publish_msgstr


def publish_msgstr(app, source, source_path, source_line, config, settings):
    return _publish_msgstr(app, qualified_glue_keys(source, source_path), source_path,
                           source_line, config, settings)


def add_edition_links(app, pagename, templatename, context, doctree) -> None:
    _, hreflang, label = EDITIONS[other_edition(app.config.language)]
    url = other_edition_url(app.config.language, pagename)
    context["other_edition"] = {"url": url, "hreflang": hreflang, "label": label}
    context["metatags"] = context.get("metatags", "") + (
        f'\n<link rel="alternate" hreflang="{hreflang}" href="{url}" />')


def other_edition_role(name, rawtext, text, lineno, inliner, options=None, content=None):  # noqa: E501 - docutils' role signature
    """``{other-edition}`text```: a link to this page in the other edition."""
    env = inliner.document.settings.env
    url = other_edition_url(env.config.language, env.docname)
    return [nodes.reference(rawtext, text, refuri=url, classes=["other-edition"])], []


def add_header_link(app, config) -> None:
    here = Path(__file__).parent
    config.templates_path = [*config.templates_path, str(here / "templates")]
    config.html_static_path = [*config.html_static_path, str(here / "static")]
    options = dict(config.html_theme_options)
    options["article_header_end"] = ["article-header-buttons.html", "edition-link.html"]
    config.html_theme_options = options


def translate_toctree_captions(app, doctree) -> None:
    """The table of contents' part captions, from the page's catalogue: the toctrees of
    the external table of contents are inserted after Sphinx translated the page."""
    if edition_of(app.config.language) == "en":
        return
    domain = docname_to_domain(app.env.docname, app.config.gettext_compact)
    folders = [str(Path(app.srcdir, folder)) for folder in app.config.locale_dirs]
    catalog, found = init_locale(folders, app.config.language, domain)
    for toctree in doctree.findall(addnodes.toctree):
        if found and toctree.get("caption"):
            toctree["caption"] = catalog.gettext(toctree["caption"])


def setup(app):
    sphinx.transforms.i18n.publish_msgstr = publish_msgstr
    app.connect("config-inited", add_header_link)
    app.connect("doctree-read", translate_toctree_captions, priority=400)
    app.add_css_file("edition.css")
    app.connect("html-page-context", add_edition_links)
    app.add_role("other-edition", other_edition_role)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
