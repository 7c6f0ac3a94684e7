#!/usr/bin/env bash
# Dependency audit: pip-audit over the locked sets (requirements.lock, requirements-dev.lock).
# Known-vulnerable pins fail the run. When no vulnerability service answers from this machine
# the audit is skipped, saying so: an audit that looked nothing up must not read as "clean".
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
# A release with published advisories (CVE-2018-18074): a service that works reports it.
CANARY="requests==2.19.0"

canary=$(mktemp)
trap 'rm -f "$canary"' EXIT
echo "$CANARY" >"$canary"

for service in pypi osv; do
  out=$("$BIN/pip-audit" -r "$canary" --no-deps --disable-pip -s "$service" -f json \
    --progress-spinner off 2>&1 || true)
  if grep -q '"id": *"\(PYSEC\|GHSA\|CVE\)' <<<"$out"; then
    echo "audit: pip-audit with the $service vulnerability service"
    exec "$BIN/pip-audit" -r requirements.lock -r requirements-dev.lock --require-hashes \
      --disable-pip --strict -s "$service" --progress-spinner off
  fi
  why=$(grep -o -m1 \
    'Dependency not found on PyPI[^"]*\|Failed to resolve[^"]*\|HTTP[^"]*[45][0-9][0-9][^"]*' \
    <<<"$out" || true)
  echo "audit: the $service vulnerability service gave nothing for $CANARY (${why:-no answer})"
done
echo "audit: SKIPPED: no vulnerability service reachable from this machine; run \`make audit\`" \
  "where PyPI's JSON API or OSV answers"
