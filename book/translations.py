"""The Chinese edition's message catalogues: configuration, update and check.

The book is written in English. Sphinx's gettext builder cuts every page into
messages (a paragraph, a list item, a heading, a caption), and the Chinese edition is
the same build with each message replaced by its translation from
``locale/zh_CN/LC_MESSAGES/<page>.po``. The API reference's docstrings stay in
English (its page says so), so their messages are left out of the catalogues.

    python book/translations.py config zh_CN DIR  # _config.yml of one edition in DIR
    python book/translations.py update            # make translations
    python book/translations.py check [PO ...]    # make test: every message current

``update`` extracts the messages, merges them into the catalogues (a changed
paragraph keeps its old translation, marked fuzzy, with the old English beside it)
and drops messages that are gone. ``check`` fails, naming page and message, when a
message has no translation, a fuzzy one, or one that changed a formula, a number, a
reference or a link of the English, or that quotes a section's title otherwise than
that section's translated heading.
"""

from __future__ import annotations

import argparse
import datetime
import posixpath
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import yaml
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALE_DIR = ROOT / "locale"
LANGUAGE = "zh_CN"
CATALOGUES = LOCALE_DIR / LANGUAGE / "LC_MESSAGES"
# A fixed date in every header, so that updating the catalogues changes only messages.
FIXED_DATE = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
PROJECT = "Attention, Softmax and Positional Encoding"

# What a translation must keep from the English, piece by piece.
MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.S)
ROLE = re.compile(r"\{([\w:-]+)\}`([^`]*)`")
CODE = re.compile(r"(?<![}`])`([^`]+)`")
LINK_TARGET = re.compile(r"\]\(([^)\s]+)\)|\[\^([\w-]+)\]|<(https?://[^>]+)>")
# Numbers of two or more digits, or with a decimal point: results that must not change
# (10x, 56th count as 10, 56). A single digit may be written as a Chinese numeral
# (Part 6 -> 第六部分), a number of millions or billions in Chinese units (1.3 million
# -> 130 万), and a month by its number (November -> 11 月).
NUMBER = re.compile(r"(?:(?<![\w.])-?\d+(?:\.\d+)+"
                    r"|(?<![\w.])\d{2,}(?=(?:x|st|nd|rd|th)\b|(?!\w)))"
                    r"(?!\s*(?:thousand|million|billion|trillion|万|亿|月))")


def edition_config(language: str) -> dict:
    """The book's _config.yml for one language, with absolute paths to extensions."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf8"))
    sphinx = config["sphinx"]
    sphinx["local_extensions"] = {
        name: str(ROOT / folder) for name, folder in sphinx["local_extensions"].items()
    }
    settings = sphinx.setdefault("config", {})
    settings["language"] = language
    settings["locale_dirs"] = [str(LOCALE_DIR)]
    settings["gettext_compact"] = False
    settings["gettext_allow_fuzzy_translations"] = False
    if language.startswith("zh"):
        config["title"] = "注意力、softmax 与位置编码"
        settings["html_search_language"] = "zh"
    return config


def write_config(language: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "_config.yml"
    path.write_text(yaml.safe_dump(edition_config(language), allow_unicode=True,
                                   sort_keys=False), encoding="utf8")
    return path


def extract(folder: Path) -> dict[str, Catalog]:
    """Every page's messages, as {page: catalogue}, from Sphinx's gettext builder."""
    config = write_config("en", folder)
    subprocess.run(
        [str(Path(sys.executable).parent / "jupyter-book"), "build", str(ROOT),
         "--config", str(config), "--path-output", str(folder), "--builder", "custom",
         "--custom-builder", "gettext", "--all", "-qq"],
        check=True,
    )
    templates = {}
    pot_dir = folder / "_build" / "gettext"
    for pot in sorted(pot_dir.rglob("*.pot")):
        with pot.open("rb") as file:
            catalog = read_po(file)
        page = pot.relative_to(pot_dir).with_suffix("").as_posix()
        templates[page] = without_docstrings(catalog)
    return templates


def without_docstrings(catalog: Catalog) -> Catalog:
    """The catalogue without the messages that come only from Python docstrings."""
    kept = Catalog(locale=LANGUAGE, project=PROJECT, creation_date=FIXED_DATE,
                   revision_date=FIXED_DATE, fuzzy=False)
    for message in catalog:
        if not message.id:
            continue
        if message.locations and not any(path.endswith((".md", ".ipynb"))
                                         for path, _ in message.locations):
            continue  # "companion/x.py:docstring of companion.x.f:3"
        kept.add(message.id, locations=(), context=message.context)
    return kept


def catalogue_path(page: str) -> Path:
    return CATALOGUES / f"{page}.po"


def read_catalogue(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file, locale=LANGUAGE)


def write_catalogue(catalog: Catalog, path: Path) -> None:
    for message in catalog:
        if not message.fuzzy:  # the old English of a fuzzy message, once translated
            message.previous_id = []  # (babel reads "#| msgid" back as "# | msgid")
            message.user_comments = [c for c in message.user_comments
                                     if not c.startswith("|")]
    catalog.creation_date = catalog.revision_date = FIXED_DATE
    catalog.project, catalog.version = PROJECT, ""
    catalog.fuzzy = False
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        write_po(file, catalog, width=0, no_location=True, omit_header=False,
                 ignore_obsolete=True, include_previous=True)


def update() -> None:
    """Merge freshly extracted messages into the catalogues (make translations)."""
    with tempfile.TemporaryDirectory() as folder:
        templates = extract(Path(folder))
    for page, template in templates.items():
        path = catalogue_path(page)
        catalog = read_catalogue(path) if path.exists() else Catalog(locale=LANGUAGE)
        catalog.update(template, update_header_comment=False)
        write_catalogue(catalog, path)
    for path in CATALOGUES.rglob("*.po"):
        if path.relative_to(CATALOGUES).with_suffix("").as_posix() not in templates:
            path.unlink()
    report(problems_of_all(templates))


def kept_pieces(text: str) -> Counter:
    """Formulas, code, reference targets, links and numbers of a message."""
    pieces = Counter(MATH.findall(text))
    rest = MATH.sub(" ", text)
    for role, content in ROLE.findall(rest):
        target = re.search(r"<([^<>]+)>\s*$", content)
        if role == "other-edition":  # its text is the link's label, in each language
            pieces["{other-edition}"] += 1
        elif role in ("math", "glue:math"):
            pieces[f"{{{role}}}{content}"] += 1
        else:
            pieces[f"{{{role}}}" + (target.group(1) if target else content)] += 1
    rest = ROLE.sub(" ", rest)
    pieces.update(f"`{code}`" for code in CODE.findall(rest))
    rest = CODE.sub(" ", rest)
    pieces.update("".join(match) for match in LINK_TARGET.findall(rest))
    rest = LINK_TARGET.sub(" ", rest)
    pieces.update(NUMBER.findall(rest))
    return pieces


def problems(page: str, catalog: Catalog, template: Catalog | None = None) -> list[str]:
    """Why the catalogue of one page is not a current, faithful translation."""
    found = []
    ids = {message.id for message in catalog if message.id}
    if template is not None:
        wanted = {message.id for message in template if message.id}
        found += [f"{page}: no translation for {short(id_)}" for id_ in wanted - ids]
        found += [f"{page}: message no longer in the book: {short(id_)}"
                  for id_ in ids - wanted]
    for message in catalog:
        if not message.id:
            continue
        if not message.string:
            found.append(f"{page}: untranslated: {short(message.id)}")
        elif message.fuzzy:
            found.append(f"{page}: fuzzy (English changed): {short(message.id)}")
        else:
            lost = kept_pieces(message.id) - kept_pieces(message.string)
            added = kept_pieces(message.string) - kept_pieces(message.id)
            if lost or added:
                found.append(f"{page}: translation changes {sorted(lost)} into "
                             f"{sorted(added)}: {short(message.id)}")
    return found


# A link to a page followed by the title of one of its sections, as the errata cite.
QUOTED_SECTION = re.compile(r'\{doc\}`(?:[^`<]*<)?([^`<>]+)>?`, "([^"]+)"')


def misquoted_sections(catalogs: dict[str, Catalog]) -> list[str]:
    """Section titles quoted after a link, translated unlike the heading itself."""
    headings = {page: {m.id: m.string for m in catalog if m.id and m.string}
                for page, catalog in catalogs.items()}
    found = []
    for page, catalog in catalogs.items():
        for message in catalog:
            for target, title in QUOTED_SECTION.findall(message.id or ""):
                folder = posixpath.dirname(page)
                linked = posixpath.normpath(posixpath.join(folder, target))
                heading = headings.get(linked, {}).get(title)
                if heading and message.string and f"“{heading}”" not in message.string:
                    found.append(f"{page}: the heading {title!r} of {linked} is "
                                 f"“{heading}” in Chinese: {short(message.id)}")
    return found


def problems_of_all(templates: dict[str, Catalog]) -> list[str]:
    found, catalogs = [], {}
    for page, template in templates.items():
        path = catalogue_path(page)
        if not path.exists():
            found.append(f"{page}: no catalogue {path.relative_to(ROOT)}")
            continue
        catalogs[page] = read_catalogue(path)
        found += problems(page, catalogs[page], template)
    for path in sorted(CATALOGUES.rglob("*.po")):
        page = path.relative_to(CATALOGUES).with_suffix("").as_posix()
        if page not in templates:
            found.append(f"{page}: catalogue of a page that is not in the book")
    return found + misquoted_sections(catalogs)


def short(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def report(found: list[str]) -> None:
    for line in found:
        print(line)
    print(f"{len(found)} messages without a current translation"
          if found else "every message has a current translation")


def check(paths: list[str]) -> int:
    """make test: every message of the book has a current, faithful translation."""
    if paths:  # the translator's check of some catalogues, without extracting
        found = []
        for path in map(Path, paths):
            page = path.resolve().relative_to(CATALOGUES).with_suffix("").as_posix()
            found += problems(page, read_catalogue(path))
    else:
        with tempfile.TemporaryDirectory() as folder:
            found = problems_of_all(extract(Path(folder)))
    if found:
        print("The Chinese edition is not current: run 'make translations' and "
              "translate the messages below in locale/zh_CN/LC_MESSAGES/.")
    report(found)
    return 1 if found else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    config = commands.add_parser("config", help="write one edition's _config.yml")
    config.add_argument("language")
    config.add_argument("folder", type=Path)
    commands.add_parser("update", help="extract messages and merge them into the .po")
    checking = commands.add_parser("check", help="fail unless every message is current")
    checking.add_argument("paths", nargs="*", help="only these .po files")
    arguments = parser.parse_args()
    if arguments.command == "config":
        print(write_config(arguments.language, arguments.folder))
        return 0
    if arguments.command == "update":
        update()
        return 0
    return check(arguments.paths)


if __name__ == "__main__":
    sys.exit(main())
