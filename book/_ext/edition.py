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
- gives the other extensions ``in_language`` for the text they generate;
- makes the titles of exercises translatable, and warns (an error in the strict
  build) when Sphinx drops a translation.

Registered in `_config.yml` under ``sphinx: local_extensions``.
"""

from __future__ import annotations

import re
from pathlib import Path

import sphinx.transforms.i18n
from docutils import nodes
from sphinx import addnodes
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.util import logging
from sphinx.util.i18n import docname_to_domain
from sphinx.util.nodes import extract_messages

# The editions: Sphinx language, folder under _build/html, hreflang, link label.
EDITIONS = {
    "en": ("", "en", "English"),
    "zh_CN": ("zh", "zh-CN", "中文"),
}
logger = logging.getLogger(__name__)
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


def page_catalogue(app):
    """The translations of the page being read, and whether it has a catalogue."""
    domain = docname_to_domain(app.env.docname, app.config.gettext_compact)
    folders = [str(Path(app.srcdir, folder)) for folder in app.config.locale_dirs]
    return init_locale(folders, app.config.language, domain)


def translate_toctree_captions(app, doctree) -> None:
    """The table of contents' part captions, from the page's catalogue: the toctrees of
    the external table of contents are inserted after Sphinx translated the page."""
    if edition_of(app.config.language) == "en":
        return
    catalog, found = page_catalogue(app)
    for toctree in doctree.findall(addnodes.toctree):
        if found and toctree.get("caption"):
            toctree["caption"] = catalog.gettext(toctree["caption"])


def as_markdown(node: nodes.Element) -> str:
    """The MyST text of a line of inline nodes (text, math, code)."""
    parts = []
    for child in node.children:
        if isinstance(child, nodes.math):
            parts.append(f"${child.astext()}$")
        elif isinstance(child, nodes.literal):
            parts.append(f"`{child.astext()}`")
        else:
            parts.append(child.astext())
    return "".join(parts)


class LocateExerciseTitles(SphinxTransform):
    """Gives the titles of exercises (``{exercise} Title``) their source text:
    sphinx-exercise creates them without, and Sphinx neither extracts nor translates
    such text."""

    default_priority = 15  # before Sphinx's Locale (20)

    def apply(self, **kwargs) -> None:
        for node in self.document.findall(nodes.subtitle):
            if node.source is None:
                node.source = self.document["source"]
                node.line = node.parent.line if node.parent is not None else None
                node.rawsource = as_markdown(node)


class TranslatedExercisesForLinks(SphinxTransform):
    """sphinx-exercise titles a solution ("Solution to Exercise 3 (title)") from a copy
    of the exercise taken before Sphinx translated the page: give it the translated
    exercise instead."""

    default_priority = 27  # after Sphinx's Locale (20)

    def apply(self, **kwargs) -> None:
        registry = getattr(self.env, "sphinx_exercise_registry", {})
        if edition_of(self.config.language) == "en" or not registry:
            return
        for node in self.document.findall(nodes.Element):
            entry = registry.get(node.get("label"))
            if entry and entry["docname"] == self.env.docname and node.get("type"):
                entry["node"] = node.deepcopy()


def extract_exercise_titles(app, doctree) -> None:
    """For the gettext builder: the exercises' titles, which sphinx-exercise merges
    into new, untranslatable title nodes before the builder extracts messages."""
    if app.builder.name != "gettext":
        return
    domain = docname_to_domain(app.env.docname, app.config.gettext_compact)
    for node in doctree.findall(nodes.subtitle):
        if node.source and node.rawsource:
            node.uid = getattr(node, "uid", "")
            app.builder.catalogs[domain].add(node.rawsource, node)


class TranslationsApplied(SphinxTransform):
    """Warns about a translation that Sphinx dropped: Sphinx applies a translated
    message only if it parses as a paragraph (or a title), and silently keeps the
    English otherwise, e.g. for "1. 引言", which parses as a numbered list."""

    default_priority = 26  # after Sphinx's Locale (20) and its progress count (25)

    def apply(self, **kwargs) -> None:
        if edition_of(self.config.language) == "en":
            return
        catalog, found = page_catalogue(self.app)
        if not found:
            return
        for node, message in extract_messages(self.document):
            dropped = node.get("translated") is False
            dropped = dropped and not isinstance(node, nodes.image)
            if dropped and catalog.gettext(message) not in ("", message):
                logger.warning(
                    "translation not applied, as it does not parse as a paragraph "
                    "(escape a leading '1.', '-' or '#' with a backslash): "
                    f"{message!r}",
                    location=node,
                )


def setup(app):
    sphinx.transforms.i18n.publish_msgstr = publish_msgstr
    app.connect("config-inited", add_header_link)
    app.connect("doctree-read", translate_toctree_captions, priority=400)
    app.connect("doctree-read", extract_exercise_titles)
    app.add_css_file("edition.css")
    app.connect("html-page-context", add_edition_links)
    app.add_role("other-edition", other_edition_role)
    app.add_transform(LocateExerciseTitles)
    app.add_transform(TranslationsApplied)
    app.add_transform(TranslatedExercisesForLinks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
