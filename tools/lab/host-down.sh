#!/bin/bash
# usage: host-down.sh NAME [--keep]
# Clean poweroff (SIGTERM to nspawn -> SIGRTMIN+3 -> systemd shutdown; SIGKILL after 20 s), then
# delete the host's root (unless --keep). Never fails: safe to call for hosts that do not exist.
set -u
# shellcheck source=tools/lab/common.sh
. "$(dirname "$(readlink -f "$0")")/common.sh"
N=$1
T0=$(date +%s.%N)
if [ -f "$LAB_RUN/$N.pid" ]; then
  P=$(cat "$LAB_RUN/$N.pid")
  if kill -0 "$P" 2>/dev/null && grep -q nspawn-loop "/proc/$P/cmdline" 2>/dev/null; then
    kill -TERM "$P"
    for _ in $(seq 1 100); do kill -0 "$P" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$P" 2>/dev/null; then
      echo "lab: $N did not power off in 20 s; killing it" >&2
      pkill -KILL -P "$P" 2>/dev/null; kill -KILL "$P" 2>/dev/null
    fi
  fi
  rm -f "$LAB_RUN/$N.pid"
fi
rm -f "$LAB_RUN/$N.ip"
M=$LAB_MACHINES/$N
if [ "${2:-}" != --keep ] && [ -d "$M" ]; then
  if mountpoint -q "$M"; then
    umount "$M" 2>/dev/null || umount -l "$M"
    rmdir "$M"
  else   # on disk: delete in the background (slow on discard-mounted file systems)
    mkdir -p "$LAB_STATE_DIR/trash"; T=$(mktemp -d "$LAB_STATE_DIR/trash/$N.XXXX"); mv "$M" "$T/"
    setsid nohup rm -rf --one-file-system "$T" >/dev/null 2>&1 </dev/null &
  fi
fi
echo "$N down ($(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s)"
