# Two commands on a fresh clone: `make demo` (offline quickstart) and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
# Real data: $XLEXP_DATA_DIR, else ../shared/data when it exists, else ./data. xlexp resolves this itself
# (xlexp.config.paths.default_data_dir), so `xlexp run ...` typed after `make demo` reads the same data.
PYTEST_ARGS ?=

.PHONY: demo demo-data lint test test-fast install install-core clean bench bench-gpu docs docs-numbers docs-numbers-check

# `install`: xlexp with every CPU extra (W&B, hub datasets, cluster sweeps, LoRA, dashboard, URIEL) and the dev
# tools, which the tests exercise; `install-core` (what `make demo` needs): xlexp alone, no extras
install: $(VENV)/.installed
install-core: $(VENV)/.installed-core

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[all,dev]"
	@touch $@ $(VENV)/.installed-core

$(VENV)/.installed-core: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	@touch $@

# demo-data first: where the quickstart's data will come from (local, else the copy embedded in the package),
# or one error line, before minutes of install and encoder build
demo: demo-data install-core
	$(BIN)/xlexp build-model
	$(BIN)/xlexp run +experiment=quickstart
	$(BIN)/xlexp matrix --experiment quickstart --gap
	$(BIN)/xlexp report --experiment quickstart

# ruff ([tool.ruff] in pyproject.toml), then the layer contracts and the no-cycle rule ([tool.importlinter]).
# RUFF_FORMAT= (empty) skips `ruff format --check` ([tool.ruff.format]); on by default since the code base was formatted once (issue #30)
RUFF_FORMAT ?= 1
lint: install
	$(BIN)/ruff check .
	$(if $(RUFF_FORMAT),$(BIN)/ruff format --check .)
	$(BIN)/lint-imports

# lint first, then every test: both tiers, `unit` and `integration` (tests/conftest.py), the slow and SLURM ones included
test: lint
	$(BIN)/python -m pytest -m "not docs_numbers" $(PYTEST_ARGS)

# lint, then the unit tier only: in-process tests that train no model and spawn no run (a few minutes on 2 cores)
test-fast: lint
	$(BIN)/python -m pytest -m "unit and not docs_numbers" $(PYTEST_ARGS)

# the generated tables of docs/configs.md and docs/tasks.md, from xlexp/conf (tests/docs/test_docs.py checks them)
docs: install
	$(BIN)/xlexp docs --docs docs

# the quickstart numbers quoted in docs/models.md, re-derived from one fp32 quickstart run with a fresh
# cache (~5 min on 2 idle cores); tests/docs/test_quickstart_numbers.py (slow) fails when they go stale
docs-numbers: install
	$(BIN)/python benchmarks/quickstart_numbers.py --write

docs-numbers-check: install
	$(BIN)/python -m pytest -m docs_numbers $(PYTEST_ARGS)

# Benchmarks of issue #8 (see benchmarks/README.md; results -> benchmarks/results/, copy them into
# BENCHMARKS.md). About 1.5-2 h on 2 idle CPU cores; `make bench BENCH_ARGS=--quick` is a smoke run.
# The HF Trainer peer needs accelerate: the `bench` extra.
BENCH_ARGS ?=
bench: install
	$(BIN)/pip install --quiet --disable-pip-version-check -e ".[dev,bench]"
	$(BIN)/python benchmarks/e2e_vs_peer.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/train_efficiency.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/eval_at_scale.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/tracking_overhead.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/sweep_vs_hf.py $(BENCH_ARGS)

# Table 6 (GPU MFU): needs CUDA (~3 min on an H200); elsewhere use `BENCH_ARGS=--quick` for a CPU smoke run.
bench-gpu: install
	PYTHON=$(BIN)/python bash benchmarks/gpu_session.sh

demo-data:
	@PYTHONPATH=. $(PYTHON) -m xlexp.config.paths nusax_senti

clean:
	rm -rf outputs multirun results/runs results/matrices results/report results/compare results/wandb results/predicted .pytest_cache
