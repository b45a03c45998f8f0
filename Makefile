# make book  - set up .venv and build the web book into _build/html/ (the Korean
#              edition, ko/, into _build/html/ko/)
# make test  - set up .venv, then lint, unit tests, strict nbval (twice), book build with
#              warnings as errors, and the built book in headless Chromium
# make lab   - set up .venv-lab (what a reader's kernel needs, no dev tools) and open
#              JupyterLab on the chapters; extra server flags: make lab LAB_ARGS=--allow-root
# make ko    - regenerate the Korean chapters ko/notebooks/ (and ko/_toc.yml) from the
#              English ones plus ko/translations/
# make translations - mark new/changed English text in ko/translations/ and print what
#              to (re)translate
#
# TORCH picks the torch requirement installed first, TORCH_INDEX where pip takes it from.
# A plain `torch` on Linux is the CUDA build (about 3 GB of wheels); the chapters need
# only the CPU build (about 200 MB):
#     make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu
# CI uses the CPU build on its disk: `make test TORCH=torch==2.13.0`.

PYTHON ?= python3
TORCH ?= torch>=2.1
TORCH_INDEX ?=
LAB_ARGS ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LAB_VENV := .venv-lab
LAB_STAMP := $(LAB_VENV)/.installed
PIP_TORCH = pip install "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))

.PHONY: book test lab lint unit nbval build browser notebooks sync clean ko translations

# the authors' environment: the package, Jupyter, and the dev extra (jupyter-book,
# nbval, ruff, transformers, playwright, ...)
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_TORCH)
	$(BIN)/pip install -r requirements.txt
	$(BIN)/pip install -e ".[dev]"
	touch $(STAMP)

# The Korean book is built on its own (jupyter-book writes <--path-output>/_build/html)
# and copied to _build/html/ko/, where the language switch expects it.
KO_BUILD := _build/ko
KO_COPY = rm -rf _build/html/ko && cp -r $(KO_BUILD)/_build/html _build/html/ko

# a reader's environment, in its own folder so that `make test` after `make lab` still
# gets the dev tools (and `make lab` after `make test` installs nothing it does not need)
$(LAB_STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(LAB_VENV)
	$(LAB_VENV)/bin/$(PIP_TORCH)
	$(LAB_VENV)/bin/pip install -r requirements.txt
	touch $(LAB_STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --all
	$(BIN)/jupyter-book build ko --all --path-output $(KO_BUILD)
	$(KO_COPY)

test: lint unit nbval build browser

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/notebooks.py check
	$(BIN)/python scripts/translate.py check --complete

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

lab: $(LAB_STAMP)
	@echo "Opening JupyterLab on notebooks/ (stop it with Ctrl-C). As root, add"
	@echo "LAB_ARGS=--allow-root; on a server, LAB_ARGS='--no-browser --ip=0.0.0.0'."
	$(LAB_VENV)/bin/jupyter lab notebooks/ $(LAB_ARGS)

# for authors: write badges + setup cells (after editing _config.yml's repository.url),
# then execute chapters in place (NB=notebooks/03_x.ipynb for one)
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
