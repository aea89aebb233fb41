#!/usr/bin/env bash
# Remove the lab bridge and its nft table, unless a host is still attached (or --force).
set -u
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$(readlink -f "$0")")/common.sh"
lab_require_root
down() {
  local ports=/sys/class/net/$LAB_BRIDGE/brif i
  # a veth goes away shortly after its container's network namespace
  for ((i = 0; i < 10; i++)); do [ -n "$(ls -A "$ports" 2>/dev/null)" ] || break; sleep 0.2; done
  if [ -d "$ports" ] && [ -n "$(ls "$ports")" ] && [ "${1:-}" != --force ]; then
    echo "bridge $LAB_BRIDGE still in use ($(cd "$ports" && echo *)); keeping it"; return 0
  fi
  if [ "${1:-}" != --force ] && "$LAB_TOOLS/package-mirror.sh" status >/dev/null 2>&1; then
    echo "bridge $LAB_BRIDGE carries the package mirror; keeping it (package-mirror.sh stop, then net-down.sh)"; return 0
  fi
  ip link del "$LAB_BRIDGE" 2>/dev/null
  nft delete table ip "$LAB_NFT_TABLE" 2>/dev/null
  return 0
}
lab_locked -xn down "$@"
