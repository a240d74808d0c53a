#!/usr/bin/env bash
# The whole test suite on a fresh machine (the README's second command; .ci/run runs it):
#   bash scripts/test.sh                   everything, ~15 minutes on 2 cores (pytest-xdist)
#   bash scripts/test.sh -m "not e2e"      the fast in-process part
# Installs what the tests start for real when it is missing: Debian's chromium (the
# report and the MLflow UI in a browser) and postgresql (the team server's store), with
# apt-get (as root, or through sudo); then the test extras with pip; then runs pytest
# with any arguments given. Exit code: pytest's (5, no tests collected, is a failure).
set -uo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "tests: installing ${missing[*]} with apt-get" >&2
  as_root=()
  [ "$(id -u)" -eq 0 ] || as_root=(sudo)
  "${as_root[@]}" apt-get update -qq || exit 1
  DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}" \
    >/dev/null || exit 1
fi

python -m pip install --quiet --disable-pip-version-check -e ".[test]" || exit 1

python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "tests: pytest collected no tests; that is a failure here." >&2
  exit 1
fi
exit "$status"
