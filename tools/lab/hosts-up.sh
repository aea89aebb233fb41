#!/usr/bin/env bash
# usage: hosts-up.sh NAME=IP [NAME=IP ...]
# Builds the base image if needed, then boots all hosts in parallel (host-up.sh). Every host's
# /etc/hosts lists all hosts named here. Exits non-zero if any host failed to come up (the
# others stay up: call hosts-down.sh with the same names to clean up).
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"
[ $# -ge 1 ] || lab_die "usage: hosts-up.sh NAME=IP [NAME=IP ...]"
lab_require_root
"$HERE/build-image.sh"
mkdir -p "$LAB_RUN"
HOSTS_FILE=$(mktemp "$LAB_RUN/hosts.XXXXXX")
trap 'rm -f "$HOSTS_FILE"' EXIT
for spec in "$@"; do
  [[ $spec == *=* ]] || lab_die "'$spec' is not NAME=IP"
  printf '%s\t%s\n' "${spec#*=}" "${spec%%=*}" >> "$HOSTS_FILE"
done
T0=$SECONDS
pids=()
for spec in "$@"; do
  "$HERE/host-up.sh" "${spec%%=*}" "${spec#*=}" "$HOSTS_FILE" & pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
echo "$# host(s) booted in $((SECONDS - T0)) s$([ $rc = 0 ] || echo ' (with failures)')"
exit $rc
