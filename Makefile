# One command per developer task. `make test` is what the README and CI run.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
CACHE  ?= .cache
TAHOE_VENV := $(CACHE)/tahoe-venv

.PHONY: install tahoe browser demo test unit integration lint format typecheck bench bench-report check rss-cap rss-put faults load soak fuzz clean

$(VENV)/.ok: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Byte-compile our own packages as a regular (non-editable) pip install would: every worker process
# and CLI start then loads .pyc files instead of compiling ~70 modules (about 60-80 ms a start), also
# where PYTHONDONTWRITEBYTECODE is set. Only changed files are recompiled.
install: $(VENV)/.ok
	@$(PY) -m compileall -q uploader workers tools > /dev/null

# Stock Tahoe-LAFS 1.20.0, in its own venv under the cache, pinned by a committed constraints file.
$(TAHOE_VENV)/.ok: tests/tahoe-constraints.txt | $(VENV)/.ok
	$(PY) -m tools.tahoe_venv --dir $(TAHOE_VENV) --constraints tests/tahoe-constraints.txt

tahoe: $(TAHOE_VENV)/.ok

# Debian's headless Chromium and its WebDriver, for the status page's browser test (no browser download).
# Installs only when either is missing, so it is a no-op on a machine that has them (CI runs as root).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver; \
	fi

# The main job on the embedded local grid: start 10 servers, upload 256 MiB, check it, stop.
demo: install
	$(PY) -m tools.demo

test: install tahoe browser
	$(PY) -m pytest

unit: install
	$(PY) -m pytest -m "not integration"

integration: install tahoe browser
	$(PY) -m pytest -m integration

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: install
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

typecheck: install
	$(PY) -m mypy uploader workers

bench: install
	$(PY) -m tools.bench

# The throughput model's full sweep and timelines (root: tbf in a namespace; < 15 min), refreshing
# docs/performance/ and the generated blocks of docs/performance.md.
bench-report: install tahoe
	$(PY) -m tools.bench --report

# Peak RSS of `cap` over a 1 GiB file (issue 2's acceptance figure; not part of CI).
rss-cap: install
	$(PY) -m tools.rss_cap --size 1073741824

# Peak RSS of `put` for a 4 GiB upload on a temporary 10-server local grid (issue 5's figure; not CI).
rss-put: install
	$(PY) -m tools.rss_put --size 4294967296

# A longer random fault run than CI's fixed seeds: servers and the uploader killed at random points
# mid-upload (FAULT_RUNS random seeds each; FAULT_SEEDS=s1,s2 replays), plus the other fault tests.
faults: install
	FAULT_RUNS=$${FAULT_RUNS:-30} $(PY) -m pytest tests/integration/test_upload_faults.py \
		tests/integration/test_faults_uploader.py tests/integration/test_faults_workers.py \
		tests/integration/test_faults_disk.py tests/integration/test_faults_network.py \
		tests/integration/test_faults_servers.py

# 100 concurrent uploads (~300 MB) through the daemon to 10 local servers, every cap checked.
load: install
	$(PY) -m tools.load

# The load repeated for 30 minutes (not CI); raw log and result in docs/soak/.
soak: install
	$(PY) -m tools.soak

# Coverage-guided fuzzing (atheris) of the parsers' hypothesis tests, FUZZ_SECONDS each (not CI).
fuzz: install
	$(PY) -m pip install -q 'atheris>=2.3'
	$(PY) -m tools.atheris_fuzz all --seconds $${FUZZ_SECONDS:-60}

check: lint typecheck test

clean:
	rm -rf $(VENV) $(CACHE) .pytest_cache .mypy_cache .ruff_cache .hypothesis
