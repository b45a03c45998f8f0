# make book  - set up .venv and build the web book into _build/html/ (the Korean
#              edition, ko/, into _build/html/ko/)
# make test  - set up .venv, then lint, unit tests, strict nbval (twice), book build with
#              warnings as errors, and the built book in headless Chromium
# make lab   - set up .venv and open JupyterLab on the chapters
# make ko    - regenerate the Korean chapters ko/notebooks/ (and ko/_toc.yml) from the
#              English ones plus ko/translations/
# make translations - mark new/changed English text in ko/translations/ and print what
#              to (re)translate
#
# TORCH picks the torch requirement installed first (CI uses the CPU build on disk:
# `make test TORCH=torch==2.13.0`); readers get whatever `torch` resolves to for them.

PYTHON ?= python3
TORCH ?= torch>=2.1
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test lab lint unit nbval build browser notebooks sync clean ko translations

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

# The Korean book is built on its own (jupyter-book writes <--path-output>/_build/html)
# and copied to _build/html/ko/, where the language switch expects it.
KO_BUILD := _build/ko
KO_COPY = rm -rf _build/html/ko && cp -r $(KO_BUILD)/_build/html _build/html/ko

book: $(STAMP)
	$(BIN)/jupyter-book build . --all
	$(BIN)/jupyter-book build ko --all --path-output $(KO_BUILD)
	$(KO_COPY)

test: lint unit nbval build browser

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/notebooks.py check
	$(BIN)/python scripts/translate.py check

unit: $(STAMP)
	$(BIN)/pytest tests --ignore=tests/browser

nbval: $(STAMP)
	# strict: every cell's output must be reproduced; run twice to show it is stable
	$(BIN)/pytest --nbval --nbval-current-env notebooks
	$(BIN)/pytest --nbval --nbval-current-env notebooks -q

build: $(STAMP)
	$(BIN)/jupyter-book build . --all -W -n --keep-going
	$(BIN)/jupyter-book build ko --all -W -n --keep-going --path-output $(KO_BUILD)
	$(KO_COPY)

browser: $(STAMP)
	$(BIN)/pytest tests/browser

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks/

# for authors: write badges + setup cells, then execute chapters in place (NB=notebooks/03_x.ipynb for one)
sync: $(STAMP)
	$(BIN)/python scripts/notebooks.py sync

notebooks: $(STAMP)
	$(BIN)/python scripts/notebooks.py execute $(NB)

ko: $(STAMP)
	$(BIN)/python scripts/translate.py build

translations: $(STAMP)
	$(BIN)/python scripts/translate.py merge
	$(BIN)/python scripts/translate.py todo

clean:
	rm -rf _build
