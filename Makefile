# The two commands: `make book` (HTML into _build/html) and `make test` (everything CI checks).
# Both create .venv from requirements.txt when it is missing or older than the requirements.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Third-party JavaScript served from the built site, so the book reads offline.
# Taken from the npm registry at build time (never committed).
MATHJAX_VERSION := 3.2.2
MERMAID_VERSION := 11.12.1
VENDOR := _vendor
NOTEBOOKS := $(sort $(wildcard notebooks/*/*.ipynb))
NBVAL := --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg
# The Chinese edition: the same sources and executed notebooks, with the translations
# of locale/zh_CN/, built into _build/zh and copied to _build/html/zh (the English
# edition's pages link to it and back; book/_ext/edition.py).
ZH := _build/zh
define build_zh
	$(BIN)/python book/translations.py config zh_CN $(ZH) >/dev/null
	$(BIN)/jupyter-book build . --config $(ZH)/_config.yml --path-output $(ZH) --builder html $(1)
	rm -rf _build/html/zh && cp -r $(ZH)/_build/html _build/html/zh
endef

.PHONY: help book test lint unit translations check-translations nbval strict-book browser \
        browser-deps execute execution-times assignments lab serve clean

help:
	@echo "make book     build the HTML book into _build/html, its Chinese edition into _build/html/zh"
	@echo "make test     lint, unit tests, re-run every notebook (nbval), strict book build,"
	@echo "              then every page checked in a real browser (make browser)"
	@echo "make translations  update the Chinese catalogues in locale/zh_CN/ after an English change"
	@echo "make execute  re-execute notebooks in place (NB=path/to.ipynb for one)"
	@echo "make browser  open every page of the built book in headless Chromium and check it"
	@echo "make execution-times  re-time every notebook, one at a time, for the appendix"
	@echo "make assignments  build the otter-grader assignments into _build/assignments"
	@echo "make lab      open JupyterLab on the notebooks"
	@echo "make serve    serve the built book on http://localhost:8000"
	@echo "make clean    remove build outputs (keeps .venv)"

$(STAMP): requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

$(VENDOR)/.stamp: Makefile
	rm -rf $(VENDOR) && mkdir -p $(VENDOR)/npm $(VENDOR)/mathjax $(VENDOR)/mermaid
	cd $(VENDOR)/npm && npm pack --silent mathjax@$(MATHJAX_VERSION) mermaid@$(MERMAID_VERSION) >/dev/null
	tar -xzf $(VENDOR)/npm/mathjax-$(MATHJAX_VERSION).tgz -C $(VENDOR)/mathjax \
	    --strip-components=2 package/es5
	tar -xzf $(VENDOR)/npm/mermaid-$(MERMAID_VERSION).tgz -C $(VENDOR)/mermaid \
	    --strip-components=2 --wildcards --exclude='*.map' \
	    'package/dist/mermaid.esm.min.mjs' 'package/dist/chunks/mermaid.esm.min/*'
	rm -rf $(VENDOR)/npm
	touch $@

book: $(STAMP) $(VENDOR)/.stamp
	$(BIN)/jupyter-book build . --builder html
	$(call build_zh,)
	@echo "Open _build/html/index.html (中文版: _build/html/zh/index.html), or run 'make serve'"
	@echo "(diagrams need a local server)."

# In this order (browser reads what strict-book built; do not use make -j here).
test: lint unit check-translations nbval strict-book browser

lint: $(STAMP)
	$(BIN)/ruff check companion tests notebooks browser book/_ext book/translations.py assignments

unit: $(STAMP)
	$(BIN)/pytest tests

# notebooks/conftest.py records each notebook's run time in _build/execution_times.json.
nbval: $(STAMP)
	$(BIN)/pytest $(NBVAL) -n 2 --dist loadfile notebooks

strict-book: $(STAMP) $(VENDOR)/.stamp
	$(BIN)/jupyter-book build . --builder html --all -W -n --keep-going
	$(call build_zh,--all -W -n --keep-going)

# Extract the book's messages and merge them into locale/zh_CN/LC_MESSAGES/*.po: new
# messages arrive untranslated, changed ones fuzzy (with the old English beside them).
translations: $(STAMP)
	$(BIN)/python book/translations.py update

# Fails, naming page and message, unless every message has a current translation that
# keeps the English's formulas, numbers, references and links.
check-translations: $(STAMP)
	$(BIN)/python book/translations.py check

# The reader's view: serve _build/html on localhost, open every page in headless
# Chromium (Debian's chromium and chromium-driver) and check math, figures, diagrams,
# the console and that no request leaves the machine. Screenshots: _build/screenshots/.
browser: $(STAMP) browser-deps
	$(BIN)/pytest browser

# Installs Debian's chromium, chromium-driver and a font with Chinese glyphs
# (fonts-noto-cjk, for the Chinese edition) when one is missing (needs root or sudo,
# and apt); does nothing when all are there.
browser-deps:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null \
	    || [ -z "$$(fc-list :lang=zh 2>/dev/null)" ]; then \
	    sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    export DEBIAN_FRONTEND=noninteractive; \
	    packages="chromium chromium-driver fonts-noto-cjk"; \
	    $$sudo apt-get install -y $$packages \
	    || { $$sudo apt-get update && $$sudo apt-get install -y $$packages; }; \
	fi

# Re-time every notebook alone (no parallel workers) into the committed fallback
# of the "Execution statistics" appendix.
execution-times: $(STAMP)
	$(BIN)/pytest $(NBVAL) notebooks --execution-times book/appendix/execution_times.json

# Every chapter's exercises as an otter-grader assignment: a student notebook (solutions
# removed, public tests inside) and an autograder (solutions, hidden tests, zip) per
# chapter, from the tests in assignments/. The instructor's guide explains their use.
assignments: $(STAMP)
	$(BIN)/python assignments/build.py

execute: $(STAMP)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace \
	    --ExecutePreprocessor.timeout=600 --ExecutePreprocessor.record_timing=False \
	    $(or $(NB),$(NOTEBOOKS))

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks

serve:
	$(PYTHON) -m http.server --directory _build/html 8000

clean:
	rm -rf _build $(VENDOR) .pytest_cache .ruff_cache .hypothesis
