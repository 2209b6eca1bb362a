#!/usr/bin/env bash
# The one test command: sets up everything the tests need on a fresh machine, then runs
# every tier (unit, integration, e2e). CI (.ci/run) calls exactly this.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m e2e -x`.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*" >&2; }

log "python environment (.venv)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet -e '.[test]'

log "Debian packages"
# promtool checks the chart's alert rules and dashboard queries (integration tier).
if ! command -v promtool >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq prometheus >/dev/null
fi
# docker-registry (distribution 2.8) with htpasswd / token auth: registry credentials tests;
# htpasswd (apache2-utils) makes its bcrypt password file.
if ! command -v docker-registry >/dev/null 2>&1 || ! command -v htpasswd >/dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq && $sudo apt-get install -y -qq docker-registry apache2-utils >/dev/null
fi

log "tool binaries (built from pinned Go modules, cached in ~/.cache/deployguard/tools)"
python3 scripts/provision_tools.py
DEPLOYGUARD_TOOLS_BIN="$(python3 scripts/provision_tools.py --print-dir)"
export DEPLOYGUARD_TOOLS_BIN
export PATH="$DEPLOYGUARD_TOOLS_BIN:$PWD/.venv/bin:$PATH"

log "lint and types"
ruff check webhook tests bench scripts
ruff format --check webhook
mypy

log "policy tests on both engines"
"$DEPLOYGUARD_TOOLS_BIN/opa" test policies/
deployguard policy test --policies policies/

log "pytest: unit, integration and e2e tiers"
export DEPLOYGUARD_REQUIRE_TIERS="${DEPLOYGUARD_REQUIRE_TIERS-unit,integration,e2e}"
if [ "$#" -gt 0 ]; then
  DEPLOYGUARD_REQUIRE_TIERS="" exec pytest "$@"
fi
exec pytest
