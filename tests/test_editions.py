"""The Chinese edition's machinery: the check of the catalogues (book/translations.py)
and the links between the editions (book/_ext/edition.py). Whether every message of
the book is translated is `make check-translations`; this file tests the checks."""

import importlib.util
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


translations = load(ROOT / "book" / "translations.py", "translations")
edition = load(ROOT / "book" / "_ext" / "edition.py", "edition")


def catalogue(*pairs, fuzzy=()):
    catalog = Catalog(locale="zh_CN")
    for english, chinese in pairs:
        catalog.add(english, chinese, flags=("fuzzy",) if english in fuzzy else ())
    return catalog


GOOD = (
    "With scores $a(q, k_i)$ the output is {glue:text}`toy_estimate:.1f` cm, "
    "equation {eq}`attention-pooling` in {doc}`Part 6, chapter 3 <../x/y>` "
    "(`attention_pooling`, 0.859 of 96 sentences) {cite}`bahdanau2015`.",
    "分数为 $a(q, k_i)$ 时，输出为 {glue:text}`toy_estimate:.1f` cm，即"
    "{doc}`第 6 部分第 3 章 <../x/y>` 中的式 {eq}`attention-pooling`"
    "（`attention_pooling`，96 个句子中的 0.859）{cite}`bahdanau2015`。",
)


def test_a_faithful_translation_passes():
    template = catalogue((GOOD[0], ""))
    assert translations.problems("page", catalogue(GOOD), template) == []


@pytest.mark.parametrize(
    "changed, what",
    [
        (GOOD[1].replace("a(q, k_i)", "a(q, k)"), "$a(q, k)$"),
        (GOOD[1].replace("0.859", "0.86"), "0.86"),
        (GOOD[1].replace("toy_estimate", "toy_weight_8"), "toy_weight_8"),
        (GOOD[1].replace("<../x/y>", "<../x/z>"), "../x/z"),
        (GOOD[1].replace("`attention_pooling`", "attention_pooling"), "attention"),
        (GOOD[1].replace("{cite}`bahdanau2015`", ""), "bahdanau2015"),
        (GOOD[1].replace("96 个", "九十六个"), "96"),
    ],
)
def test_a_translation_that_changes_the_english_fails(changed, what):
    found = translations.problems("page", catalogue((GOOD[0], changed)))
    assert len(found) == 1 and what in found[0], found


def test_missing_fuzzy_untranslated_and_stale_messages_are_named():
    template = catalogue(("New paragraph.", ""), ("Changed.", ""), ("Empty.", ""))
    catalog = catalogue(
        ("Changed.", "改了。"), ("Empty.", ""), ("Gone.", "没了。"), fuzzy=("Changed.",)
    )
    found = "\n".join(translations.problems("page", catalog, template))
    assert "no translation for New paragraph." in found
    assert "fuzzy (English changed): Changed." in found
    assert "untranslated: Empty." in found
    assert "no longer in the book: Gone." in found


@pytest.mark.parametrize(
    "english, chinese",
    [
        ("Part 6, chapter 5 has three heads.", "第六部分第五章有三个头。"),  # one digit
        ("ImageNet (1.3 million images)", "ImageNet（130 万张图像）"),
        ("memory more than 10x smaller", "内存少 10 倍以上"),
        ("the 56th meeting, 15 November 2023", "第 56 届会议，2023 年 11 月 15 日"),
        ("Read it in {other-edition}`Chinese`.", "阅读{other-edition}`英文版`。"),
    ],
)
def test_what_chinese_may_write_differently(english, chinese):
    assert translations.problems("page", catalogue((english, chinese))) == []


def test_docstring_messages_stay_out_of_the_catalogues():
    pot = Catalog()
    pot.add("Page text.", locations=[("../../book/appendix/api.md", 3)])
    # "companion/softmax.py:docstring of companion.softmax.softmax:1", cut at spaces
    pot.add("A docstring.", locations=[("companion/softmax.py:docstring", None),
                                       ("of", None), ("companion.softmax.softmax", 1)])
    pot.add("Shared text.", locations=[("companion/x.py:docstring", None),
                                       ("../../notebooks/a.ipynb", 40)])
    kept = [m.id for m in translations.without_docstrings(pot) if m.id]
    assert kept == ["Page text.", "Shared text."]


@pytest.mark.parametrize(
    "language, page, url",
    [
        ("en", "index", "zh/index.html"),
        ("en", "notebooks/01_introduction/01_what_is_attention",
         "../../zh/notebooks/01_introduction/01_what_is_attention.html"),
        ("zh_CN", "index", "../index.html"),
        ("zh_CN", "book/appendix/api", "../../../book/appendix/api.html"),
        (None, "search", "zh/search.html"),
    ],
)
def test_each_page_links_to_itself_in_the_other_edition(language, page, url):
    assert edition.other_edition_url(language, page) == url


def test_glued_numbers_in_translated_notebook_text_name_their_notebook():
    text = "各 {glue:text}`w8:.4f`，{glue}`fig`，{glue:text}`n`，"
    text += "{glue:text}`a.ipynb::k:d`"
    assert edition.qualified_glue_keys(text, "/book/notebooks/p/x.ipynb") == (
        "各 {glue:text}`x.ipynb::w8:.4f`，{glue}`x.ipynb::fig`，"
        "{glue:text}`x.ipynb::n:s`，{glue:text}`a.ipynb::k:d`"
    )
    assert edition.qualified_glue_keys(text, "/book/book/index.md") == text


def test_a_fuzzy_message_keeps_the_old_english_until_it_is_translated(tmp_path):
    catalog = Catalog(locale="zh_CN")
    catalog.add("New text.", "旧译文。", flags=("fuzzy",), previous_id="Old text.")
    catalog.add("Done.", "完成。", user_comments=["| msgid \"Earlier.\""])
    path = tmp_path / "page.po"
    translations.write_catalogue(catalog, path)
    text = path.read_text(encoding="utf-8")
    assert '#| msgid "Old text."' in text and "Earlier." not in text


def test_a_quoted_section_title_must_match_the_translated_heading():
    chapter = catalogue(("Four scores", "四种评分函数"))
    cited = '{doc}`../../notebooks/x/chapter`, "Four scores"'
    good = catalogue((cited, "{doc}`../../notebooks/x/chapter`，“四种评分函数”"))
    bad = catalogue((cited, "{doc}`../../notebooks/x/chapter`，“四种分数”"))
    for errata, expected in ((good, 0), (bad, 1)):
        catalogs = {"notebooks/x/chapter": chapter, "book/appendix/errata": errata}
        assert len(translations.misquoted_sections(catalogs)) == expected
