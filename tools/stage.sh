#!/usr/bin/env bash
# Run one stage of `make test`, record its wall time, keep going only if it passed.
# Usage: tools/stage.sh NAME command [args...]     (times land in $STAGE_LOG)
set -u
name=$1; shift
log=${STAGE_LOG:-${TMPDIR:-/tmp}/sharedsw-cvmfs-stages.tsv}
mkdir -p "$(dirname "$log")"
start=$(date +%s.%N)
echo "==> [$name] $*"
"$@"
rc=$?
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
printf '%s\t%s\t%s\n' "$name" "$secs" "$rc" >> "$log"
echo "<== [$name] rc=$rc in ${secs}s"
exit $rc
