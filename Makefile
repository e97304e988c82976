# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_DIR ?= runs/demo
SAMPLES_DIR ?= $(RUN_DIR)-samples

.PHONY: install demo test lint clean

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
