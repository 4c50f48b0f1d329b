# The commands README.md and CI use.
.PHONY: install up test bench clean

install:
	@scripts/setup.sh

up: install
	.venv/bin/citywatch up

test: install
	.venv/bin/python -m pytest -n 3 --dist loadfile

bench: install
	.venv/bin/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf var .venv *.egg-info
