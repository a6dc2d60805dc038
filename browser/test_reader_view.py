"""The reader's view: every page of the built book, opened in headless Chromium.

Run by `make browser` (the last step of `make test`, after the strict book build) as
`pytest browser`; `make unit` (`pytest tests`) does not collect it. It serves
`_build/html` on a free localhost port and checks, for every page the build wrote:

- it loads with no console error (no SEVERE browser log entry) and no HTTP error;
- MathJax ran: every `.math` element Sphinx wrote holds an `mjx-container`, MathJax
  reports no TeX error or undefined macro, and no raw `$$`, `\\(`, `\\[` or
  `\\begin{` is left in the page's text outside code;
- every `<img>` decoded (`naturalWidth > 0`);
- every mermaid diagram rendered (an `<svg>` inside each `.mermaid`, not mermaid's
  error diagram);
- no request left the machine (Chrome's Network events: only 127.0.0.1/localhost
  and the browser's own `data:`, `blob:`, `about:` and `chrome:` URLs);
- no Markdown was left unparsed in the text (`**`, a backtick, a MyST role);
- it is in its edition's language (`<html lang>`) and its header links to the same
  page in the other edition, which links back;
- in the Chinese edition (`_build/html/zh/`), Chinese characters are drawn with a
  real font, not as empty boxes, and the table of contents' captions and the titles
  of boxes (exercises, solutions, notes) are translated.

Both editions show the same glued numbers, and their searches find a word of their
language; following the language links goes from one edition to the other and back.

Screenshots of a landing page and a chapter of each edition go to
`_build/screenshots/`. Driven by Selenium with Debian's chromium and chromium-driver
(same package version, so they always match); override the paths with the CHROMIUM
and CHROMEDRIVER environment variables.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))
SCREENSHOTS = ROOT / "_build" / "screenshots"
# Pages photographed for a person to look at: the landing page, and a chapter
# scrolled to a displayed equation with a figure just below it (else its first figure).
SCREENSHOT_PAGES = {
    "landing": "book/index.html",
    "chapter": "notebooks/03_softmax/01_definition_and_properties.html",
    "landing-zh": "zh/book/index.html",
    "chapter-zh": "zh/notebooks/03_softmax/01_definition_and_properties.html",
}
# The editions: folder under _build/html and the language of its pages.
EDITIONS = {"": "en", "zh/": "zh-CN"}
# A word each edition's search must find.
SEARCH_WORDS = {"": "softmax", "zh/": "注意力"}
PAGE_LOAD_TIMEOUT = 60  # seconds, for one page and its scripts
RENDER_TIMEOUT = 30  # seconds, for MathJax's typesetting and mermaid's diagrams
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
# Raw TeX that MathJax would have replaced, looked for in the page's text outside code.
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\end\{")
# Markdown a parser would have consumed: emphasis, inline code, a MyST role.
RAW_MARKDOWN = re.compile(r"\*\*|`|\{(?:glue|doc|ref|eq|cite|numref|term|math)[:}]")


def built_pages() -> list[str]:
    """Every HTML page of the current build of both editions, relative to `_build/html`.

    The documents come from the search index each build wrote (so a page left over
    from an older build is not checked); the generated pages (indices, search,
    the redirecting root page) are the top-level HTML files of each edition.
    """
    pages = set()
    for edition in EDITIONS:
        index = HTML / edition / "searchindex.js"
        if not index.is_file():
            continue
        text = index.read_text(encoding="utf-8")
        data = json.loads(text[text.index("(") + 1 : text.rindex(")")])
        pages |= {f"{edition}{name}.html" for name in data["docnames"]}
        pages |= {edition + p.name for p in (HTML / edition).glob("*.html")}
    missing = sorted(p for p in pages if not (HTML / p).is_file())
    assert not missing, f"pages in the search index but not on disk: {missing}"
    return sorted(pages)


def edition_of(page: str) -> str:
    return "zh/" if page.startswith("zh/") else ""


def edition_link(page: str) -> str | None:
    """The page (relative to `_build/html`) that `page`'s language link leads to."""
    source = (HTML / page).read_text(encoding="utf-8")
    link = re.search(r'<a href="([^"]+)" class="btn btn-sm edition-link"', source)
    if not link:
        return None
    return os.path.normpath(os.path.join(os.path.dirname(page), link.group(1)))


PAGES = built_pages()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".mjs": "text/javascript",
        ".js": "text/javascript",
        ".woff": "font/woff",
        ".woff2": "font/woff2",
        ".svg": "image/svg+xml",
    }

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="session")
def site():
    """Base URL of `_build/html`, served on a free port of 127.0.0.1."""
    if not (HTML / "index.html").is_file():
        pytest.fail(f"no built book at {HTML}: run `make book` (or `make test`) first")
    handler = functools.partial(_QuietHandler, directory=str(HTML))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _executable(variable: str, name: str) -> str:
    path = os.environ.get(variable) or shutil.which(name)
    if not path:
        pytest.fail(
            f"{name} not found: install Debian's chromium and chromium-driver "
            f"(`make browser-deps`) or set {variable}"
        )
    return path


@pytest.fixture(scope="session")
def driver():
    """One headless Chromium for the whole session, with console and network logs."""
    profile = tempfile.mkdtemp(prefix="reader-view-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = _executable("CHROMIUM", "chromium")
    for flag in (
        "--headless",
        "--no-sandbox",  # we run as root in CI
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--mute-audio",
        "--hide-scrollbars",
        "--lang=en-US",
        "--window-size=1280,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    options.add_experimental_option("perfLoggingPrefs", {"enableNetwork": True})
    # An explicit driver path: Selenium Manager (which would download one) never runs.
    service = Service(executable_path=_executable("CHROMEDRIVER", "chromedriver"))
    browser = webdriver.Chrome(options=options, service=service)
    browser.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
    browser.set_script_timeout(RENDER_TIMEOUT)
    # Chromium starts on its own new-tab page, which makes requests of its own (one
    # fails to resolve a name here): leave it for a blank page and let it fall quiet,
    # so that the first book page is judged on its own requests only.
    browser.get("about:blank")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if not any(_drain_logs(browser)):
            break
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _drain_logs(browser) -> tuple[list[dict], list[dict]]:
    """Console entries and Network events since the last call."""
    console = browser.get_log("browser")
    network = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"].startswith("Network."):
            network.append(message)
    return console, network


def _is_local(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in {"data", "blob", "about", "chrome"}:  # never the network
        return True
    return (
        parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname in LOCAL_HOSTS
    )


@pytest.mark.parametrize(
    "url, local",
    [
        ("http://127.0.0.1:8000/_static/mathjax/tex-mml-chtml.js", True),
        ("http://localhost:8000/book/index.html", True),
        ("data:image/svg+xml;base64,PHN2Zz4=", True),
        ("https://unpkg.com/thebe@0.8.2/lib/index.js", False),
        ("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js", False),
        ("http://127.0.0.2/x.png", False),
        ("wss://example.org/socket", False),
    ],
)
def test_only_this_machine_counts_as_local(url, local):
    assert _is_local(url) is local


# In the page: wait for MathJax's first typesetting, then report on every formula.
MATHJAX_JS = """
const done = arguments[arguments.length - 1];
const started = Date.now();
const report = () => {
  const bad = [];
  for (const item of MathJax.startup.document.math) {
    let problem = null;
    item.root.walkTree((node) => {
      if (problem) return;
      if (node.isKind('merror')) problem = 'TeX error';
      else if (node.isKind('mtext') && node.attributes.get('mathcolor') === 'red')
        problem = 'undefined macro';
    });
    if (problem) bad.push(problem + ' in: ' + item.math.slice(0, 120));
  }
  const elements = Array.from(document.querySelectorAll('.math'));
  const untypeset = elements.filter((el) => !el.querySelector('mjx-container'))
    .map((el) => el.textContent.slice(0, 120));
  // A display formula wider than the text column is cut off on the page.
  const wide = Array.from(document.querySelectorAll('mjx-container[display="true"]'))
    .filter((c) => c.querySelector('mjx-math') &&
      c.querySelector('mjx-math').getBoundingClientRect().width >
        c.getBoundingClientRect().width + 2)
    .map((c) => (c.closest('[id]') || {id: '(no id)'}).id);
  done({present: true, formulas: MathJax.startup.document.math.length,
        mathElements: elements.length, untypeset: untypeset, bad: bad, wide: wide,
        containers: document.querySelectorAll('mjx-container').length});
};
const wait = () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    MathJax.startup.promise.then(report,
                                 (e) => done({present: true, error: String(e)}));
  } else if (Date.now() - started > 20000) {
    done({present: false});
  } else {
    setTimeout(wait, 50);
  }
};
wait();
"""

# The page's text outside code, scripts, typeset math (and arguments[0], if given).
TEXT_JS = """
const skip = 'pre, code, script, style, textarea, mjx-container, .highlight'
  + (arguments[0] ? ', ' + arguments[0] : '');
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
const parts = [];
while (walker.nextNode()) {
  const node = walker.currentNode;
  if (!node.parentElement.closest(skip)) parts.push(node.textContent);
}
return parts.join(' ');
"""

# Two different Chinese characters of the page, drawn in the page's font: a font that
# lacks them draws both as the same empty box. Control: two private-use characters,
# which no font has, must come out the same.
CJK_GLYPHS_JS = """
const text = arguments[0];
const chars = Array.from(new Set(text.match(/[\\u4e00-\\u9fff]/g) || [])).slice(0, 2);
const font = getComputedStyle(document.body).fontFamily;
const draw = (c) => {
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = 48;
  const ctx = canvas.getContext('2d');
  ctx.font = '32px ' + font;
  ctx.fillText(c, 4, 36);
  return canvas.toDataURL();
};
return {chars: chars.join(''),
        same: chars.length < 2 || draw(chars[0]) === draw(chars[1]),
        controlSame: draw('\\ue000') === draw('\\ue001')};
"""

# Mermaid renders diagrams hidden at load time (a closed dropdown) only once they
# become visible: open their dropdowns and scroll them into view.
MERMAID_REVEAL_JS = """
for (const el of document.querySelectorAll('.mermaid')) {
  if (el.querySelector('svg')) continue;
  for (let p = el.parentElement; p; p = p.parentElement) {
    if (p.tagName === 'DETAILS') p.open = true;
  }
  el.scrollIntoView();
}
"""

MERMAID_STATE_JS = """
return Array.from(document.querySelectorAll('.mermaid')).map((el) => {
  const svg = el.querySelector('svg');
  return {
    svg: !!svg,
    error: !!svg && (svg.getAttribute('aria-roledescription') === 'error'
                     || /Syntax error/.test(svg.textContent)),
    failed: el.hasAttribute('data-mermaid-render-failed'),
    source: (() => {  // data-original-code holds HTML: decode its entities
      const t = document.createElement('textarea');
      t.innerHTML = el.getAttribute('data-original-code') || el.textContent;
      return t.value.trim().slice(0, 60);
    })(),
  };
});
"""

IMAGES_JS = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach((img) => { img.loading = 'eager'; });
const started = Date.now();
const check = () => {
  if (images.every((img) => img.complete) || Date.now() - started > 20000) {
    done(images.map((img) => ({src: img.currentSrc || img.src, complete: img.complete,
                                width: img.naturalWidth})));
  } else {
    setTimeout(check, 50);
  }
};
check();
"""


def _wait_for(browser, script: str, what: str, page: str):
    """Run an asynchronous script in the page; fail clearly if it never calls back."""
    try:
        return browser.execute_async_script(script)
    except TimeoutException:
        pytest.fail(f"{page}: {what} did not finish within {RENDER_TIMEOUT} s")


def _open(browser, site: str, page: str) -> str:
    """Load a page (following the root page's redirect); return its final path."""
    try:
        browser.get(site + page)
    except TimeoutException:
        pytest.fail(f"{page} did not load within {PAGE_LOAD_TIMEOUT} s")
    source = (HTML / page).read_text(encoding="utf-8")
    redirect = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', source)
    if redirect:
        target = redirect.group(1)
        deadline = time.monotonic() + PAGE_LOAD_TIMEOUT
        while not browser.current_url.endswith(target):
            assert time.monotonic() < deadline, f"{page} did not redirect to {target}"
            time.sleep(0.05)
        page = os.path.normpath(os.path.join(os.path.dirname(page), target))
        # get() returned before the redirect: wait for the target's own load event.
        deadline = time.monotonic() + PAGE_LOAD_TIMEOUT
        while browser.execute_script("return document.readyState") != "complete":
            assert time.monotonic() < deadline, f"{target} did not finish loading"
            time.sleep(0.05)
    return page


@pytest.mark.parametrize("page", PAGES or ["(no built book)"])
def test_page_reads_as_intended(page, site, driver):
    if not PAGES:
        pytest.fail(
            f"no build at {HTML} (searchindex.js missing): run `make book` first"
        )
    _drain_logs(driver)  # forget anything the previous page logged late
    final = _open(driver, site, page)
    source = (HTML / final).read_text(encoding="utf-8")
    problems = []

    # Math: MathJax finished, typeset every formula Sphinx wrote, and reported no error.
    # (Sphinx adds MathJax only to pages with math.)
    expected = source.count('class="math notranslate nohighlight"')
    if re.search(r"<script[^>]+mathjax/tex-mml-chtml\.js", source):
        math = _wait_for(driver, MATHJAX_JS, "MathJax's typesetting", final)
        if not math["present"]:
            problems.append(
                "MathJax never started (no MathJax.startup.promise in 20 s)"
            )
        elif "error" in math:
            problems.append(f"MathJax failed: {math['error']}")
        else:
            if math["mathElements"] != expected:
                problems.append(
                    f"{expected} math elements in the HTML, "
                    f"{math['mathElements']} in the page"
                )
            if math["untypeset"]:
                problems.append(f"math not typeset: {math['untypeset'][:5]}")
            if math["containers"] < expected:
                problems.append(
                    f"{math['containers']} mjx-container for {expected} formulas"
                )
            problems += [f"MathJax: {bad}" for bad in math["bad"][:5]]
            if math["wide"]:
                problems.append(f"formulas wider than the column: {math['wide']}")
    elif expected:
        problems.append(f"{expected} math elements but no MathJax script")
    # No button leads to a repository, Binder or Colab when no address is set.
    if not os.environ.get("COURSE_REPOSITORY"):
        for button in (
            "repository-button",
            "issues-button",
            "dropdown-launch-buttons",
            "colab.research.google.com",
            "mybinder.org",
        ):
            if button in source:
                problems.append(f"{button} shown, but no repository address is set")

    text = driver.execute_script(TEXT_JS)
    raw = sorted(
        {text[max(0, m.start() - 30) : m.end() + 30] for m in RAW_TEX.finditer(text)}
    )
    if raw:
        problems.append(f"raw TeX left in the text: {raw[:5]}")
    # (Not in the API reference's signatures and docstrings: `**kwargs`, `grid**2`.)
    prose = driver.execute_script(TEXT_JS, "dl.py")
    markdown = sorted(
        {prose[max(0, m.start() - 30) : m.end() + 30]
         for m in RAW_MARKDOWN.finditer(prose)}
    )
    if markdown:
        problems.append(f"unparsed Markdown in the text: {markdown[:5]}")

    # Language: <html lang>, and the header link to the same page in the other
    # edition, which links back here.
    edition = edition_of(final)
    lang = driver.execute_script("return document.documentElement.lang")
    if lang != EDITIONS[edition]:
        problems.append(f"<html lang={lang!r}>, expected {EDITIONS[edition]!r}")
    other = edition_link(final)
    if other is None:
        problems.append("no link to the other edition in the header")
    elif edition_of(other) == edition or not (HTML / other).is_file():
        problems.append(f"the language link leads to {other}, not the other edition")
    elif edition_link(other) != final:
        problems.append(f"{other} links back to {edition_link(other)}, not here")
    if edition == "zh/":
        for selector, what in (
            (".bd-sidebar-primary .caption-text", "table of contents' captions"),
            (".admonition-title", "titles of boxes"),
        ):
            texts = driver.execute_script(
                "return Array.from(document.querySelectorAll(arguments[0]))"
                ".map((e) => e.textContent)",
                selector,
            )
            english = [t for t in texts if not re.search(r"[\u4e00-\u9fff]", t)]
            if english:
                problems.append(f"{what} not translated: {english}")
        glyphs = driver.execute_script(CJK_GLYPHS_JS, text)
        if not glyphs["controlSame"]:
            problems.append("the check for missing glyphs is broken (control differs)")
        elif glyphs["same"]:
            problems.append(f"Chinese drawn as empty boxes: {glyphs['chars']}")

    # Mermaid: every diagram in the HTML became an SVG (not mermaid's error diagram).
    expected_diagrams = len(re.findall(r'<pre\s+class="mermaid"', source))
    driver.execute_script(MERMAID_REVEAL_JS)
    deadline = time.monotonic() + RENDER_TIMEOUT
    while True:
        diagrams = driver.execute_script(MERMAID_STATE_JS)
        settled = all(d["svg"] or d["failed"] for d in diagrams)
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if len(diagrams) != expected_diagrams:
        problems.append(
            f"{expected_diagrams} mermaid blocks in the HTML, {len(diagrams)} in page"
        )
    for d in diagrams:
        if not d["svg"] or d["error"] or d["failed"]:
            state = (
                "error diagram" if d["error"] else f"not rendered in {RENDER_TIMEOUT} s"
            )
            problems.append(f"mermaid diagram {d['source']!r}: {state}")

    # Images: every <img> decoded.
    for img in _wait_for(driver, IMAGES_JS, "loading the images", final):
        if not img["complete"] or img["width"] == 0:
            problems.append(f"image not shown: {img['src']}")

    # Console errors and network: collected last, so late errors are seen too.
    console, network = _drain_logs(driver)
    # Chrome asks every site for /favicon.ico by itself; the book has none (not an error
    # a reader sees, and not a request the page makes).
    automatic = site + "favicon.ico"
    problems += [
        f"console {e['level']}: {e['message']}"
        for e in console
        if e["level"] == "SEVERE" and not e["message"].startswith(automatic + " ")
    ]
    sent = [m["params"] for m in network if m["method"] == "Network.requestWillBeSent"]
    requests = [params["request"]["url"] for params in sent]  # redirects included
    urls = {params["requestId"]: params["request"]["url"] for params in sent}
    requests += [
        m["params"]["url"] for m in network if m["method"] == "Network.webSocketCreated"
    ]
    assert requests, "Chrome's performance log recorded no request at all"
    problems += [
        f"request leaves localhost: {url}" for url in requests if not _is_local(url)
    ]
    for m in network:
        if m["method"] == "Network.responseReceived":
            response = m["params"]["response"]
            if response["status"] >= 400 and response["url"] != automatic:
                problems.append(f"HTTP {response['status']}: {response['url']}")
        elif m["method"] == "Network.loadingFailed" and not m["params"].get("canceled"):
            url = urls.get(m["params"]["requestId"], "(a request Chrome did not log)")
            problems.append(f"request failed ({m['params'].get('errorText')}): {url}")

    assert not problems, f"{final}:\n  " + "\n  ".join(problems)


SCROLL_TO_EQUATION_AND_FIGURE_JS = """
const figures = Array.from(document.querySelectorAll('.cell_output img'));
for (const eq of document.querySelectorAll('div.math')) {
  const top = eq.getBoundingClientRect().top + window.scrollY;
  const near = figures.find((img) => {
    const t = img.getBoundingClientRect().top + window.scrollY;
    return t > top && t - top < 450;
  });
  if (near) { window.scrollTo(0, Math.max(0, top - 80)); return true; }
}
if (figures.length) { figures[0].scrollIntoView(); }
return false;
"""


def test_both_editions_were_built():
    for edition, lang in EDITIONS.items():
        assert (HTML / edition / "searchindex.js").is_file(), (
            f"no {lang} edition in {HTML / edition}: run `make book` first"
        )


def test_both_editions_show_the_same_glued_numbers():
    """Every number pasted from the notebooks appears, as often, in both editions."""
    pasted = re.compile(r'<span class="pasted-text">([^<]*)</span>')
    compared = 0
    for page in PAGES:
        if edition_of(page) or not (HTML / "zh" / page).is_file():
            continue
        english, chinese = (
            sorted(pasted.findall((HTML / edition / page).read_text(encoding="utf-8")))
            for edition in EDITIONS
        )
        assert english == chinese, f"{page}: glued numbers differ between the editions"
        compared += len(english)
    assert compared > 500, f"only {compared} glued numbers found: is the pattern stale?"


@pytest.mark.parametrize("edition", list(EDITIONS))
def test_search_finds_a_word_of_the_edition(edition, site, driver):
    """Sphinx's search, in the Chinese edition with words segmented by jieba."""
    word = SEARCH_WORDS[edition]
    driver.get(f"{site}{edition}search.html?q={quote(word)}")
    deadline = time.monotonic() + RENDER_TIMEOUT
    found = 0
    while time.monotonic() < deadline and not found:
        time.sleep(0.2)
        found = driver.execute_script(
            "return document.querySelectorAll('#search-results li').length"
        )
    assert found >= 5, f"{EDITIONS[edition]} search for {word!r}: {found} pages found"


def test_language_links_lead_there_and_back(site, driver):
    """Clicking the header's language link twice comes back to the same page."""
    page = "notebooks/01_introduction/01_what_is_attention.html"
    _open(driver, site, page)
    for expected, lang in ((f"zh/{page}", "zh-CN"), (page, "en")):
        driver.find_element(By.CSS_SELECTOR, "a.edition-link").click()
        deadline = time.monotonic() + PAGE_LOAD_TIMEOUT
        while driver.current_url != site + expected:
            assert time.monotonic() < deadline, (
                f"the language link led to {driver.current_url}, not {expected}"
            )
            time.sleep(0.05)
        assert driver.execute_script("return document.documentElement.lang") == lang


def test_screenshots(site, driver):
    """Screenshots for a person to look at: a landing page and a chapter per edition."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, page in SCREENSHOT_PAGES.items():
        if not (HTML / page).is_file():
            pytest.fail(f"{page} is not in the build: update SCREENSHOT_PAGES")
        _open(driver, site, page)
        # The theme restores the sidebar's scroll position from earlier pages: reset it.
        driver.execute_script(
            "document.querySelectorAll('*').forEach((e) => { e.scrollTop = 0; });"
        )
        math = _wait_for(driver, MATHJAX_JS, "MathJax's typesetting", page)
        assert math["present"] and "error" not in math, (
            f"MathJax did not finish on {page}"
        )
        _wait_for(driver, IMAGES_JS, "loading the images", page)
        if name.startswith("chapter"):
            driver.execute_script(SCROLL_TO_EQUATION_AND_FIGURE_JS)
            time.sleep(0.3)  # let the theme's scroll-linked header settle
        path = SCREENSHOTS / f"{name}.png"
        assert driver.save_screenshot(str(path)), f"could not write {path}"
        assert path.stat().st_size > 20_000, (
            f"{path} is suspiciously small (blank page?)"
        )
