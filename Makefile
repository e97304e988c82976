# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_DIR ?= runs/demo
SAMPLES_DIR ?= $(RUN_DIR)-samples

.PHONY: install demo test lint clean serve app bench

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[app,data,dev]'
	touch $@

demo: install
	$(PY) -m aiclassify train --config demo.yaml --workdir $(RUN_DIR) --overwrite
	$(PY) -m aiclassify train --config demo-general.yaml --workdir $(RUN_DIR)-general --overwrite
	$(PY) -m aiclassify demo-data --samples $(SAMPLES_DIR)
	$(PY) -m aiclassify predict --run $(RUN_DIR) $(SAMPLES_DIR)/sample_real.jpg $(SAMPLES_DIR)/sample_fake.jpg
	@echo ""
	@echo "Demo models: $(RUN_DIR) (served as faces) and $(RUN_DIR)-general (served as general)."
	@echo "Next: 'make app' starts the API and the upload page (http://$(HOST):$(APP_PORT)); 'make serve' the API alone."

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests app scripts

clean:
	rm -rf $(VENV) runs .pytest_cache

# The inference API (docs/api.md) under gunicorn; override e.g. `make serve PORT=9000`.
AICLASSIFY_MODELS ?= faces=runs/demo,general=runs/demo-general
HOST ?= 127.0.0.1
PORT ?= 8000

serve: install
	AICLASSIFY_MODELS="$(AICLASSIFY_MODELS)" $(VENV)/bin/gunicorn --bind $(HOST):$(PORT) \
		--workers 1 --threads 8 --timeout 120 'aiclassify.serving.app:create_app()'

# The Streamlit upload page (docs/app.md) with the API behind it, on the demo models (`make demo`
# first). Open the printed URL; Ctrl-C stops the page, and the API with it.
APP_PORT ?= 8501

app: install
	@AICLASSIFY_MODELS="$(AICLASSIFY_MODELS)" $(VENV)/bin/gunicorn --bind $(HOST):$(PORT) \
		--workers 1 --threads 8 --timeout 120 'aiclassify.serving.app:create_app()' & api=$$!; \
	trap 'kill $$api 2>/dev/null; wait $$api 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	echo "Starting the API on http://$(HOST):$(PORT) (models: $(AICLASSIFY_MODELS))..."; \
	$(PY) app/wait_api.py http://$(HOST):$(PORT) --timeout 180 --pid $$api || exit 1; \
	echo ""; echo "    Open http://$(HOST):$(APP_PORT) in a browser (Ctrl-C stops the page and the API)."; echo ""; \
	AICLASSIFY_API_URL=http://$(HOST):$(PORT) $(VENV)/bin/streamlit run app/streamlit_app.py \
		--server.headless true --server.port $(APP_PORT) --server.address $(HOST) \
		--browser.gatherUsageStats false --client.toolbarMode minimal

# Benchmarks (docs/performance.md): the serving one needs `make demo` first; both print a table
# and write JSON under runs/.

bench: install
	$(PY) scripts/bench_serve.py --run $(RUN_DIR) --out runs/bench_serve.json
	$(PY) scripts/bench_train.py --config cifake.yaml --steps 40 --out runs/bench_train.json
