# The commands README.md and CI use.
.PHONY: install up test bench clean

install:
	@scripts/setup.sh

up: install
	.venv/bin/citywatch up

# The whole suite on the embedded Tansu broker, then the broker-facing tests on Apache Kafka (where Java is).
test: install
	.venv/bin/python -m pytest -n 3 --dist loadfile
	@scripts/test-apache-kafka.sh

bench: install
	.venv/bin/python benchmarks/bench.py $(BENCH_ARGS)

clean:
	rm -rf var .venv *.egg-info
