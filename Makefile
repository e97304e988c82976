# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_DIR ?= runs/demo
SAMPLES_DIR ?= $(RUN_DIR)-samples

.PHONY: install demo test lint clean serve app bench bench-224 fuzz

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[app,data,dev,hub,ray]'
	touch $@

demo: install
	$(PY) -m aiclassify train --config demo.yaml --workdir $(RUN_DIR) --overwrite
	$(PY) -m aiclassify train --config demo-general.yaml --workdir $(RUN_DIR)-general --overwrite
	$(PY) -m aiclassify demo-data --samples $(SAMPLES_DIR)
	$(PY) -m aiclassify predict --run $(RUN_DIR) $(SAMPLES_DIR)/sample_real.jpg $(SAMPLES_DIR)/sample_fake.jpg
	@echo ""
	@echo "Demo models: $(RUN_DIR) (served as faces) and $(RUN_DIR)-general (served as general)."
	@echo "Next: 'make app MODELS=demo' starts the API and the upload page on these demo models (http://$(HOST):$(APP_PORT));"
	@echo "'make app' alone serves the shipped models under models/; 'make serve' the API alone."

test: install
	$(PY) -m pytest

# The API fuzzed: schemathesis on every operation of its OpenAPI document (all checks, many more examples
# than in `make test`) and the project's own fuzz tests, in-process on fake models (docs/api.md).
fuzz: install
	AICLASSIFY_FUZZ_PROFILE=long $(PY) -m pytest tests/serving/test_schemathesis.py tests/serving/test_fuzz.py

lint: install
	$(VENV)/bin/ruff check src tests app scripts
	$(VENV)/bin/ruff format --check src tests app scripts

clean:
	rm -rf $(VENV) runs .pytest_cache

# The inference API (docs/api.md) under gunicorn; override e.g. `make serve PORT=9000`.
# By default the shipped models under models/ (each with its MODEL_CARD.md); `MODELS=demo` serves
# the two demo models of `make demo` instead, and AICLASSIFY_MODELS=name=path,... any runs.
MODELS ?= shipped
SHIPPED_MODELS = $(subst $(eval) ,$(comma),$(strip $(foreach name,faces general,\
	$(if $(wildcard models/$(name)/MANIFEST.json),$(name)=models/$(name)))))
comma := ,
ifeq ($(MODELS),demo)
AICLASSIFY_MODELS ?= faces=runs/demo,general=runs/demo-general
else
AICLASSIFY_MODELS ?= $(SHIPPED_MODELS)
endif
HOST ?= 127.0.0.1
PORT ?= 8000
# One process (one copy of each model), its threads batched together; `make bench` measured the
# alternatives on the 2-core development machine (docs/performance.md).
WORKERS ?= 1
THREADS ?= 32
# The other gunicorn settings (timeouts, keep-alive, connection and header limits) are in the config
# module src/aiclassify/serving/gunicorn_config.py.
GUNICORN_API = $(VENV)/bin/gunicorn -c python:aiclassify.serving.gunicorn_config --bind $(HOST):$(PORT) \
	--workers $(WORKERS) --threads $(THREADS) 'aiclassify.serving.app:create_app()'

serve: install
	AICLASSIFY_MODELS="$(AICLASSIFY_MODELS)" $(GUNICORN_API)

# The Streamlit upload page (docs/app.md) with the API behind it, on the demo models (`make demo`
# first). Open the printed URL; Ctrl-C stops the page, and the API with it.
APP_PORT ?= 8501

app: install
	@AICLASSIFY_MODELS="$(AICLASSIFY_MODELS)" $(GUNICORN_API) & api=$$!; \
	trap 'kill $$api 2>/dev/null; wait $$api 2>/dev/null' EXIT; trap 'exit 130' INT TERM; \
	echo "Starting the API on http://$(HOST):$(PORT) (models: $(AICLASSIFY_MODELS))..."; \
	$(PY) -m aiclassify.page.wait_api http://$(HOST):$(PORT) --timeout 180 --pid $$api || exit 1; \
	echo ""; echo "    Open http://$(HOST):$(APP_PORT) in a browser (Ctrl-C stops the page and the API)."; echo ""; \
	AICLASSIFY_API_URL=http://$(HOST):$(PORT) $(VENV)/bin/streamlit run app/streamlit_app.py \
		--server.headless true --server.port $(APP_PORT) --server.address $(HOST) \
		--browser.gatherUsageStats false --client.toolbarMode minimal

# Benchmarks (docs/performance.md): the serving one needs `make demo` first; both print a table
# and write JSON under runs/.

bench: install
	$(PY) scripts/bench_serve.py --run $(RUN_DIR) --workers $(WORKERS) --threads $(THREADS) \
		--out runs/bench_serve.json
	$(PY) scripts/bench_train.py --config cifake.yaml --steps 40 --out runs/bench_train.json

# The compute-bound case: cnn5 at 224x224, the product models' architecture and input (the forward
# pass dominates). Trains a speed-only copy on 32 demo images first if missing (about a minute;
# its weights do not matter for timing); BENCH_IMAGES=DIR sends real photos instead of demo JPEGs.
# Far fewer requests: the model scores about 7-10 images/s on 2 cores. About 6 minutes.
BENCH_224_RUN ?= runs/bench-cnn5-224

bench-224: install
	test -f $(BENCH_224_RUN)/metadata.json || $(PY) -m aiclassify train --config faces.yaml \
		--set name=bench-cnn5-224 --set data.source=demo --set data.path=$(BENCH_224_RUN)-data \
		--set data.demo_images_per_class=16 --set data.demo_image_size=224 --set data.cache=memory \
		--set train.epochs=1 --set train.precision=float32 --workdir $(BENCH_224_RUN)
	$(PY) scripts/bench_serve.py --run $(BENCH_224_RUN) --workers $(WORKERS) --threads $(THREADS) \
		--requests 300 --baseline-requests 100 --warmup 8 $(if $(BENCH_IMAGES),--image-dir $(BENCH_IMAGES)) \
		--out runs/bench_serve_224.json
