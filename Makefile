# The commands README.md and CI use.
.PHONY: install up lint test bench clean

install:
	@scripts/setup.sh

up: install
	.venv/bin/citywatch up

# ruff (style and bugbear) over the tree, the import floors and cycles (import-linter), mypy on engine/.
lint: install
	.venv/bin/ruff check .
	.venv/bin/lint-imports
	.venv/bin/mypy

# Lint first, then the whole suite on the embedded Tansu broker, then the broker-facing tests on Apache Kafka (where Java is).
test: install lint
	.venv/bin/python -m pytest -n 3 --dist loadfile
	@scripts/test-apache-kafka.sh

bench: install
	.venv/bin/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf var .venv *.egg-info
