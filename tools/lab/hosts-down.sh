#!/usr/bin/env bash
# usage: hosts-down.sh NAME [NAME ...]   Powers the hosts off in parallel and deletes them, then
# removes the bridge when no host is attached any more. Never fails.
set -u
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"
pids=()
for n in "$@"; do "$HERE/host-down.sh" "$n" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p"; done
"$HERE/net-down.sh"
exit 0
