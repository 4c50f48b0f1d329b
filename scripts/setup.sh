#!/usr/bin/env bash
# Install what Citywatch needs on a fresh machine: mosquitto (where apt exists) and a
# virtualenv with the package and its test tools. Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing mosquitto (Debian package)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto >/dev/null
    # Citywatch spawns its own mosquitto with its own config; the distribution's service is not needed.
    $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
  else
    echo "setup: no apt-get here; the pure-Python amqtt broker will stand in for mosquitto"
  fi
fi

# curl runs the README's HTTP examples (tests/integration/test_readme_examples.py).
if ! command -v curl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing curl (Debian package, for the README examples test)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq curl >/dev/null; } \
    || echo "setup: curl could not be installed; the README examples test will be skipped"
fi

# Headless Chromium, its driver and a CJK font (plates in screenshots) for the one-map browser tests (tests/onemap);
# without chromium those tests skip.
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing chromium and chromium-driver (Debian packages, for the browser tests)"
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver fonts-wqy-microhei \
        >/dev/null; } || echo "setup: chromium could not be installed; the one-map browser tests will be skipped"
  else
    echo "setup: no apt-get here; the one-map browser tests will be skipped (no chromium)"
  fi
fi

# Java 17+ and Maven run the broker-facing tests a second time on Apache Kafka (scripts/test-apache-kafka.sh)
# and `citywatch up --kafka apache`; without them those tests are skipped with a notice.
if { ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; } && command -v apt-get >/dev/null 2>&1; then
  echo "setup: installing Java and Maven (Debian packages, for Apache Kafka)"
  SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq default-jre-headless maven \
      >/dev/null; } || echo "setup: Java/Maven could not be installed; the Apache Kafka tests will be skipped"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.citywatch-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python dependencies into .venv"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev,embedded]"
  touch "$stamp"
fi
