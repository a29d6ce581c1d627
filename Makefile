# The few verbs a newcomer needs. Each creates .venv and installs the pinned packages first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
STAMP  := $(VENV)/.installed
# Stage commands in dvc.yaml call `python`: the project's interpreter must come first on PATH.
export PATH := $(BIN):$(PATH)

# DVC's plots page template with Vega inlined, named in .dvc/config: fetched once from the npm registry (needs npm).
PLOTS_PAGE := .dvc/plots/offline/template.html

.PHONY: help install plots-page run plots review check exact test test-fast lint format params tracking-server ui clean

help: ## list the verbs
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "Python 3.11 is required: make PYTHON=/path/to/python3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==26.3
	$(BIN)/python -m pip install --quiet --constraint requirements.lock --editable '.[dev]'
	touch $(STAMP)

$(PLOTS_PAGE): src/reprovision/commands/plots_page.py | $(STAMP)
	python -m reprovision plots-page --out $(@D)

install: $(STAMP) plots-page ## create .venv, install the pinned packages, build the offline plots page

# Best effort: without npm the pipeline and tracking work, but `dvc plots show` cannot (.dvc/config names the page).
plots-page: $(STAMP) ## build the offline `dvc plots` page (Vega from npm; best effort)
	@$(MAKE) --no-print-directory $(PLOTS_PAGE) || echo "make: warning: the offline dvc plots page \
	was not built (it needs npm and its registry), so \`dvc plots show\` fails until \`make plots-page\` succeeds"

run: $(STAMP) plots-page ## run the whole pipeline (dvc repro), then say where to look
	dvc repro
	@echo "report: reports/index.html   runs: mlflow ui --backend-store-uri sqlite:///mlflow.db"

plots: $(STAMP) $(PLOTS_PAGE) ## dvc plots show: curves and confusion matrix in a page that needs no network
	dvc plots show

BASE ?= HEAD
review: $(STAMP) plots-page ## metrics and plots of the workspace against BASE (a revision): review/metrics.md, review/plots/
	@mkdir -p review
	dvc metrics diff --all --md $(BASE) > review/metrics.md
	dvc plots diff $(BASE) --out review/plots
	@$(if $(GITHUB_STEP_SUMMARY),{ echo "### Metrics against $(BASE)"; cat review/metrics.md; \
	echo; echo "Curves and confusion matrix of both sides: the review-plots artifact."; } >> $(GITHUB_STEP_SUMMARY))
	@echo "review: review/metrics.md, review/plots/index.html (against $(BASE))"

check: $(STAMP) ## compare metrics/ with the committed baseline; fails on a regression
	python -m reprovision check $(if $(GITHUB_STEP_SUMMARY),--markdown $(GITHUB_STEP_SUMMARY))

# Portable numerics (numerics.portable) promise the committed bytes on any x86-64 CPU with AVX2; a GPU
# or an Arm CPU computes its own, and `make check`'s tolerances are the test there.
exact: $(STAMP) ## after `make run`: fail unless dvc.lock and metrics/ are the committed bytes (x86-64 CPU)
	@if [ "$$(uname -m)" != x86_64 ] || ! grep -qw avx2 /proc/cpuinfo || \
	   python -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then \
	  echo "exact: skipped: not an x86-64 CPU with AVX2 and no GPU, whose bytes are its own"; exit 0; fi; \
	changed=$$(git status --porcelain -- dvc.lock metrics); \
	if [ -n "$$changed" ]; then \
	  echo "exact: the run changed committed results (portable numerics promise the same bytes):" >&2; \
	  echo "$$changed" >&2; git diff -- dvc.lock metrics/eval.json >&2; exit 1; fi; \
	echo "exact: dvc.lock and metrics/ are the committed bytes"

test: $(STAMP) $(PLOTS_PAGE) ## run the whole test suite (includes real dvc repro runs)
	pytest

test-fast: $(STAMP) ## unit and stage tests only, no pipeline runs
	pytest -m "not slow"

lint: $(STAMP) ## ruff lint and format check
	ruff check src tests bench
	ruff format --check src tests bench

format: $(STAMP) ## apply ruff fixes and formatting
	ruff check --fix src tests bench
	ruff format src tests bench

params: $(STAMP) ## compose conf/ into params.yaml (what dvc exp run does; dvc repro does not)
	python -m reprovision params

tracking-server: $(STAMP) ## try team tracking: MLflow on a throwaway PostgreSQL, 127.0.0.1:5000
	python -m reprovision tracking-server --dir .tracking-server --port 5000

# MLflow's GenAI job workers (LLM scorers, prompt optimisation: ten processes, 2.5 GB) serve nothing a
# pipeline run logs: off, unless MLFLOW_SERVER_ENABLE_JOB_EXECUTION is set (as reprovision tracking-server).
ui: $(STAMP) ## open the MLflow UI on the project's store
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=$${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false} \
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1

clean: ## remove pipeline outputs (keeps .venv, the DVC cache and the MLflow store)
	rm -rf data/raw data/split data/normalised models checkpoints metrics reports dvc_plots
