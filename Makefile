# Two commands set up everything on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install params run test browser bench clean prefect-server serve docs study

install: $(STAMP)

# Re-install only when the pins or the package metadata change.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[pipeline,test]'
	touch $(STAMP)

# params.yaml is composed from conf/ exactly as `dvc exp run` composes it.
params: install
	$(BIN)/python -c "import os; from dvc.utils.hydra import compose_and_dump; compose_and_dump('params.yaml', os.path.abspath('conf'), None, 'config', '', [])"

# The main job: the whole DVC pipeline (stage commands call the venv's python) on the Debian soundtracks,
# or, where neither apt-get nor .deb files in data/raw/soundtracks/downloads/ can give them, on the
# generated corpus (`dvc exp run -S data=corpus`, which rewrites params.yaml), saying so.
run: install
	@if PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python stages/download.py --check soundtracks; then \
		PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro; \
	else \
		echo "make run: FELL BACK to the offline generated corpus: the soundtracks cannot be fetched here (above)."; \
		echo "make run: put the .deb files there, or run on a machine with apt-get, for the real-music run."; \
		PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc exp run -S data=corpus; \
	fi
	@sed -n '/^## This run on/,$$p' reports/tables.md
	@echo "Tables: reports/tables.md   Metrics: dvc metrics show   Plots: dvc plots show   Model card: models/pretrained.md"
	@echo "Report: $(CURDIR)/reports/index.html"

# The report page's test opens it in Debian's Chromium (never a downloaded browser). Installed here when
# possible (root with apt-get, as on CI); otherwise that one test is skipped and says why.
browser:
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
		echo "make browser: no /usr/bin/chromium (apt-get install chromium as root); the report page's browser test will be skipped"

test: install browser
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q

# A local Prefect server: SQLite in ~/.prefect, UI at http://127.0.0.1:4200, no telemetry.
prefect-server: install
	PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 $(BIN)/prefect server start --host 127.0.0.1

# Serve the s3t/full deployment to that server (one run at a time).
serve: install
	PATH="$(CURDIR)/$(BIN):$$PATH" PREFECT_API_URL=http://127.0.0.1:4200/api DO_NOT_TRACK=1 $(BIN)/python flows/serve.py

# README's results block and docs/research.md, from metrics/ and the committed study exports.
docs: install
	$(BIN)/python docs/generate.py

# A study of docs/studies/ as DVC experiments (one per setting and seed), then its export and docs/research.md:
# make study STUDY=recipe
study: install
	@test -n "$(STUDY)" || { echo "make study STUDY=<name of docs/studies/<name>.yaml>"; exit 2; }
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python docs/study.py run $(STUDY)

bench: install
	$(BIN)/python bench/bench_cqt.py
	$(BIN)/python bench/bench_pretrain.py
	$(BIN)/python bench/bench_contention.py

clean:
	rm -rf $(VENV) work
