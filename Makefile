# Two commands set everything up on a fresh clone: `make demo` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
PIP     := $(VENV)/bin/pip
STAMP   := $(VENV)/.installed
# The shared datasets folder beside the checkout, when present (CI and developers have it;
# users point TRANSFERLAB_DATA at their own copy). Nothing requires it.
SHARED  := $(abspath ../shared/datasets)
export TRANSFERLAB_DATA ?= $(if $(wildcard $(SHARED)),$(SHARED),)
export PYTHONUNBUFFERED := 1

.PHONY: install demo test bench docs-tables clean help

help:
	@echo "make demo   - create .venv if missing, install, run the Yosinski study on digits"
	@echo "make test   - install and run the test suite"
	@echo "make bench  - run the benchmarks in benchmarks/ (minutes)"
	@echo "make docs-tables - rewrite the docs' generated tables from benchmarks/results/"

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# torch first, pinned, so that nothing later can pull a CUDA build.
	$(PIP) install -q -c constraints.txt torch==2.13.0 numpy
	$(PIP) install -q -c constraints.txt -e ".[efficientnet,ray,test,text]"
	$(PY) -c "import torch, sys; v = torch.__version__; print('torch', v); \
	    sys.exit(0 if v.startswith('2.13.0') else 'unexpected torch ' + v)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	test -f runs/demo/source.safetensors || $(PY) -m transferlab pretrain \
	    --task digits:classes=0-4:size=16 --out runs/demo/source --epochs 10 --quiet
	$(PY) -m transferlab advise --source runs/demo/source.safetensors \
	    --task digits:classes=5-9:per_class=10:size=16 --verify --out runs/demo/advise
	$(PY) -m transferlab study yosinski --dataset digits --budget quick --seeds 2 --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/bench_linear_probe.py
	$(PY) benchmarks/bench_cka.py
	$(PY) benchmarks/bench_depth_sweep.py
	# needs BANKING77 (TRANSFERLAB_DATA) and the text + bench extras; a missing one is reported, not fatal
	-$(PY) benchmarks/bench_text.py

docs-tables:
	python3 benchmarks/docs_tables.py

clean:
	rm -rf runs .pytest_cache
