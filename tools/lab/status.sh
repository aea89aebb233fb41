#!/usr/bin/env bash
# usage: status.sh [NAME ...]   One line per lab host (default: every host with a pid file):
# name, address, systemd state inside, root file system use, memory of its processes (PSS).
set -u
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$(readlink -f "$0")")/common.sh"
names=("$@")
if [ ${#names[@]} = 0 ]; then
  for f in "$LAB_RUN"/*.pid; do [ -e "$f" ] && names+=("$(basename "$f" .pid)"); done
fi
[ ${#names[@]} -gt 0 ] || { echo "no lab hosts running"; exit 0; }
printf '%-16s %-15s %-12s %9s %9s\n' HOST ADDRESS STATE ROOT_MB PSS_MB
total_root=0; total_pss=0
for n in "${names[@]}"; do
  ip=$(cat "$LAB_RUN/$n.ip" 2>/dev/null || echo -)
  loop=$(cat "$LAB_RUN/$n.pid" 2>/dev/null || true)
  nspawn=$( [ -n "$loop" ] && ps --ppid "$loop" -o pid= -o comm= | awk '$2=="systemd-nspawn"{print $1; exit}')
  init=$( [ -n "$nspawn" ] && ps --ppid "$nspawn" -o pid= | awk '{print $1; exit}')
  if [ -z "$init" ]; then printf '%-16s %-15s %-12s\n' "$n" "$ip" down; continue; fi
  state=$(nsenter -t "$init" -m -p systemctl is-system-running 2>/dev/null); state=${state:-unknown}
  root_kb=$(df -k --output=used "$LAB_MACHINES/$n" 2>/dev/null | tail -1 | tr -d ' ')
  ns=$(readlink "/proc/$init/ns/pid")
  pss_kb=0
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$ns" ] || continue
    kb=$(awk '/^Pss:/{print $2}' "$p/smaps_rollup" 2>/dev/null); pss_kb=$((pss_kb + ${kb:-0}))
  done
  # a tmpfs root is RAM too; on disk it is not
  mountpoint -q "$LAB_MACHINES/$n" || root_kb=0
  total_root=$((total_root + ${root_kb:-0})); total_pss=$((total_pss + pss_kb))
  printf '%-16s %-15s %-12s %9d %9d\n' "$n" "$ip" "$state" $(( ${root_kb:-0} / 1024 )) $((pss_kb / 1024))
done
printf '%-16s %-15s %-12s %9d %9d   (RAM per host = ROOT_MB on tmpfs + PSS_MB)\n' total "" "" $((total_root / 1024)) $((total_pss / 1024))
