#!/usr/bin/env bash
# Create the lab bridge and NAT to this machine's uplink (idempotent).
# Changes on this machine: bridge LAB_BRIDGE with LAB_GW, nft table "ip LAB_NFT_TABLE",
# net.ipv4.ip_forward=1 (left on by net-down.sh).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$(readlink -f "$0")")/common.sh"
lab_require_root
# hosts booting in parallel each call this: one at a time, or a second caller finds the bridge
# without its address yet (empty NETADDR) and the nft rule is added several times
mkdir -p "$LAB_STATE_DIR"
exec 7>"$LAB_STATE_DIR/net-up.lock"
flock 7
UPLINK=$(lab_uplink)
[ -n "$UPLINK" ] || lab_die "no default route on this machine: cannot NAT the lab hosts"
if ! ip link show "$LAB_BRIDGE" >/dev/null 2>&1; then
  ip link add "$LAB_BRIDGE" type bridge
  ip addr add "$LAB_GW/$LAB_PREFIX" dev "$LAB_BRIDGE"
  ip link set "$LAB_BRIDGE" up
fi
sysctl -qw net.ipv4.ip_forward=1
NETADDR=$(ip -4 route show dev "$LAB_BRIDGE" proto kernel | awk '{print $1; exit}')
if ! nft list table ip "$LAB_NFT_TABLE" >/dev/null 2>&1; then
  nft -f - <<NFT
table ip $LAB_NFT_TABLE {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr $NETADDR oifname "$UPLINK" masquerade
  }
}
NFT
fi
