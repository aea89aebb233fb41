#!/usr/bin/env bash
# usage: host-down.sh NAME [--keep]
# Clean shutdown (SIGTERM to nspawn -> SIGRTMIN+3 -> systemd halts the guest), escalating to
# nspawn's immediate termination after 15 s and SIGKILL after 5 more, then delete the host's root
# (unless --keep). Never fails: safe to call for hosts that do not exist.
set -u
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$(readlink -f "$0")")/common.sh"
N=$1
T0=$(date +%s.%N)
# The processes of this host: nspawn-loop (pid file) -> systemd-nspawn -> the container's systemd.
alive() { kill -0 "$1" 2>/dev/null; }
wait_gone() {  # PID SECONDS
  local i
  for ((i = 0; i < $2 * 5; i++)); do alive "$1" || return 0; sleep 0.2; done
  return 1
}
if [ -f "$LAB_RUN/$N.pid" ]; then
  LOOP=$(cat "$LAB_RUN/$N.pid")
  if alive "$LOOP" && grep -q nspawn-loop "/proc/$LOOP/cmdline" 2>/dev/null; then
    NSPAWN=$(ps --ppid "$LOOP" -o pid= -o comm= | awk '$2 == "systemd-nspawn" {print $1; exit}')
    INIT=$( [ -n "$NSPAWN" ] && ps --ppid "$NSPAWN" -o pid= | awk '{print $1; exit}')
    # 1. SIGTERM: nspawn asks the guest's systemd to halt (clean shutdown of its services)
    kill -TERM "$LOOP"
    if ! wait_gone "$LOOP" 15; then
      # 2. a second SIGTERM makes nspawn terminate the container at once
      echo "lab: $N did not halt within 15 s; terminating it" >&2
      kill -TERM "$LOOP" 2>/dev/null
      if ! wait_gone "$LOOP" 5; then
        # 3. kill the guest's init (this ends its whole pid namespace), nspawn and the loop
        echo "lab: $N still there; killing it" >&2
        for p in $INIT $NSPAWN $LOOP; do kill -KILL "$p" 2>/dev/null; done
        wait_gone "$LOOP" 5
      fi
    fi
    # the guest's init must not outlive nspawn (it would keep the network namespace and veth)
    if [ -n "$INIT" ] && alive "$INIT" && [ "$(readlink "/proc/$INIT/exe" 2>/dev/null)" = /usr/lib/systemd/systemd ]; then
      kill -KILL "$INIT" 2>/dev/null
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
