# Two commands for a fresh machine with Python 3.11+: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test venv tools lint typecheck pytest layer clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The kit's main job on this machine: the real stack deployed into an embedded AWS emulator,
# DICOM ingested through it, live checks, teardown (pacs-kit sandbox demo; no AWS, no Pulumi CLI).
demo: $(STAMP)
	$(BIN)/pacs-kit sandbox demo

test: lint typecheck pytest

# Independent verifiers the tests drive: dcmtk (storescu over mutual TLS, dcmsign: DICOM digital
# signatures), openssl (verify, cms),
# dicom3tools (dciodvfy: de-identified output must stay a valid IOD). Debian/Ubuntu only.
tools:
	@missing=; \
	{ command -v storescu && command -v dcmsign; } >/dev/null 2>&1 || missing="$$missing dcmtk"; \
	command -v dciodvfy >/dev/null 2>&1 || missing="$$missing dicom3tools"; \
	command -v openssl >/dev/null 2>&1 || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing (apt-get)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP) tools
	$(BIN)/pytest

# The functions' dependency layer (build/lambda-layer.zip), which `pulumi up` uploads.
layer: $(STAMP)
	$(BIN)/pacs-kit build-layer

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build .sandbox
