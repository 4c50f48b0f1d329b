#!/usr/bin/env bash
# The broker-facing tests (marked `kafka`, and the Apache-only ones) again, on Apache Kafka: `make test` runs
# this after the whole suite has run on Tansu. Needs Java 17+ and Maven (the jars come from Maven Central once,
# then from ~/.m2). Without them it says so and stops; in CI (CI=true) that is a failure, since CI has Java.
set -euo pipefail
cd "$(dirname "$0")/.."

reason=$(.venv/bin/python -c 'from engine.brokers.apache_kafka import unavailable_reason as r; print(r() or "")')
if [ -n "$reason" ]; then
  echo "test: NOT running the broker-facing tests on Apache Kafka: $reason"
  if [ "${CI:-}" = "true" ]; then
    echo "test: CI must run them; install Java 17+ and Maven" >&2
    exit 1
  fi
  exit 0
fi
echo "test: fetching Apache Kafka with Maven (first time only)"
.venv/bin/python -c 'from engine.brokers.apache_kafka import classpath; classpath()'
echo "test: the broker-facing tests again, on Apache Kafka"
TEST_KAFKA=apache exec .venv/bin/python -m pytest -n 3 --dist loadfile -m "kafka or apache_only" "$@"
