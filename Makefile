# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_DIR ?= runs/demo
SAMPLES_DIR ?= $(RUN_DIR)-samples

.PHONY: install demo test lint clean
.PHONY: serve

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

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests

clean:
	rm -rf $(VENV) runs .pytest_cache

# The inference API (docs/api.md) under gunicorn; override e.g. `make serve PORT=9000`.
AICLASSIFY_MODELS ?= faces=runs/demo,general=runs/demo-general
HOST ?= 127.0.0.1
PORT ?= 8000

serve: install
	AICLASSIFY_MODELS="$(AICLASSIFY_MODELS)" $(VENV)/bin/gunicorn --bind $(HOST):$(PORT) \
		--workers 1 --threads 8 --timeout 120 'aiclassify.serving.app:create_app()'
