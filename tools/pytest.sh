#!/usr/bin/env bash
# pytest with the collection's conventions: exit status 5 (no test collected) is a failure
# with a message, never a silent pass. The closing summary line is kept for `make report`.
set -u -o pipefail
out=${PYTEST_SUMMARY:-tests/output/pytest-summary.txt}
mkdir -p "$(dirname "$out")"
python -m pytest "$@" 2>&1 | tee "$out.full"
rc=$?
grep -E '^=+ .*(passed|failed|error|skipped|no tests ran).* =+$' "$out.full" | tail -1 > "$out"
rm -f "$out.full"
if [ $rc -eq 5 ]; then
  echo "pytest collected no test for: $*" >&2
  exit 1
fi
exit $rc
