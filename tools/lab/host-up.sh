#!/usr/bin/env bash
# usage: host-up.sh NAME IP [HOSTS_FILE]
# Unpacks the cached base image into LAB_STATE_DIR/machines/NAME (a tmpfs unless LAB_TMPFS=0),
# boots it with systemd-nspawn -b (systemd as PID 1) in its own network namespace on the lab bridge,
# and waits until its sshd answers. HOSTS_FILE lines are appended to the host's /etc/hosts.
# Inside: eth0 with IP/LAB_PREFIX, /dev/fuse, root's authorized_keys = LAB_SSH_KEY.pub.
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"
[ $# -ge 2 ] || lab_die "usage: host-up.sh NAME IP [HOSTS_FILE]"
N=$1; IP=$2; HOSTS_FILE=${3:-/dev/null}
[[ $N =~ ^[a-z0-9][a-z0-9-]{0,62}$ ]] || lab_die "host name '$N' must be lower-case letters, digits and '-' (a machine name)"
[[ $IP =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || lab_die "host $N: '$IP' is not an IPv4 address"
[ "$IP" != "$LAB_GW" ] || lab_die "host $N: $IP is the bridge's own address"
lab_require_root
IMAGE=$(lab_image)
[ -s "$IMAGE" ] || lab_die "no base image $IMAGE: run tools/lab/build-image.sh first"
M=$LAB_MACHINES/$N
mkdir -p "$LAB_RUN" "$LAB_MACHINES" "$(dirname "$LAB_SSH_KEY")"
( flock 7; [ -f "$LAB_SSH_KEY" ] || ssh-keygen -q -t ed25519 -N '' -C sharedsw-cvmfs-lab -f "$LAB_SSH_KEY" ) 7>"$LAB_SSH_KEY.lock"
"$HERE/host-down.sh" "$N" >/dev/null 2>&1 || true          # re-create from scratch if it exists

# The guest shares this machine's kernel but sees no /sys/module and an empty /lib/modules, so
# `modprobe -q overlay` (cvmfs_server's OverlayFS test) fails on a kernel with overlay built in.
# Give modprobe the machine's modules.builtin, or, where the machine has none, one made from the
# file systems the kernel offers now (built in or loaded: either way modprobe may say yes).
kernel_modules_view() {
  local kver dir fs
  kver=$(uname -r); dir=$M/lib/modules/$kver
  mkdir -p "$dir"
  if [ -f "/lib/modules/$kver/modules.builtin" ]; then
    cp "/lib/modules/$kver/modules.builtin" "$dir/"
  else
    : > "$dir/modules.builtin"
    for fs in overlay fuse autofs squashfs; do
      grep -qw "$fs" /proc/filesystems || continue
      case $fs in
        overlay) echo kernel/fs/overlayfs/overlay.ko ;;
        autofs) echo kernel/fs/autofs/autofs4.ko ;;
        *) echo "kernel/fs/$fs/$fs.ko" ;;
      esac >> "$dir/modules.builtin"
    done
  fi
  : > "$dir/modules.order"; : > "$dir/modules.builtin.modinfo"   # depmod warns without them
  chroot "$M" depmod "$kver"
}

boot() {
  "$HERE/net-up.sh"
  mkdir -p "$M"
  [ "$LAB_TMPFS" = 0 ] || mount -t tmpfs -o "size=$LAB_TMPFS,mode=755" "lab-$N" "$M"
  tar -C "$M" --numeric-owner --xattrs --xattrs-include='*' -I zstd -xf "$IMAGE"
  echo "$N" > "$M/etc/hostname"
  { printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n%s\t%s\n' "$IP" "$N"
    grep -v -E "^[[:space:]]*${IP}[[:space:]]" "$HOSTS_FILE" || true; } > "$M/etc/hosts"
  cp /etc/resolv.conf "$M/etc/resolv.conf"       # same resolver as this machine, reached through NAT
  install -d -m 700 "$M/root/.ssh"
  install -m 600 "$LAB_SSH_KEY.pub" "$M/root/.ssh/authorized_keys"
  chroot "$M" ssh-keygen -A >/dev/null             # per-host ssh host keys
  # nspawn puts "host0" (a veth whose other end "vb-NAME" is in the bridge) into a fresh network
  # namespace; rename it to eth0 early at boot, then systemd-networkd gives it the static address.
  cat > "$M/etc/systemd/system/host0-to-eth0.service" <<UNIT
[Unit]
Description=Rename the nspawn veth host0 to eth0
DefaultDependencies=no
ConditionPathExists=/sys/class/net/host0
Before=systemd-networkd.service network-pre.target
Wants=network-pre.target
[Service]
Type=oneshot
ExecStart=/sbin/ip link set host0 name eth0
[Install]
WantedBy=sysinit.target
UNIT
  mkdir -p "$M/etc/systemd/network"
  cat > "$M/etc/systemd/network/10-eth0.network" <<NET
[Match]
Name=eth0
[Link]
MTUBytes=$(cat "/sys/class/net/$(lab_uplink)/mtu")
[Network]
Address=$IP/$LAB_PREFIX
Gateway=$LAB_GW
LinkLocalAddressing=no
IPv6AcceptRA=no
NET
  # /dev/fuse is bound from this machine, where it may be root-only (0600); cvmfs2 opens it as the
  # cvmfs user. Make the guest's own node, usable by every user, as udev makes it on a machine.
  cat > "$M/etc/systemd/system/lab-fuse-device.service" <<'UNIT'
[Unit]
Description=/dev/fuse usable by every user (as udev makes it)
DefaultDependencies=no
ConditionPathExists=/dev/fuse
Before=sysinit.target
[Service]
Type=oneshot
ExecStart=/bin/sh -c 'umount /dev/fuse 2>/dev/null; rm -f /dev/fuse && mknod -m 666 /dev/fuse c 10 229'
[Install]
WantedBy=sysinit.target
UNIT
  kernel_modules_view
  chroot "$M" systemctl enable -q host0-to-eth0.service lab-fuse-device.service systemd-networkd.service 2>/dev/null
  local extra=()
  [ -c /dev/fuse ] && extra+=(--bind=/dev/fuse)    # FUSE inside (CVMFS client, squashfuse)
  echo "$IP" > "$LAB_RUN/$N.ip"
  # --register=no --keep-unit: no systemd-machined / host systemd to register with or get a scope from
  # shellcheck disable=SC2086  # LAB_NSPAWN_ARGS is a list of extra options on purpose
  setsid "$HERE/nspawn-loop.sh" --quiet -D "$M" -M "$N" --register=no --keep-unit -b \
     --network-bridge="$LAB_BRIDGE" --resolv-conf=off --timezone=off --link-journal=no \
     --console=read-only "${extra[@]}" ${LAB_NSPAWN_ARGS:-} \
     </dev/null >"$LAB_RUN/$N.console.log" 2>&1 &
  echo $! > "$LAB_RUN/$N.pid"
  local deadline=$((SECONDS + LAB_BOOT_TIMEOUT))
  while [ $SECONDS -lt $deadline ]; do
    if timeout 0.5 bash -c "exec 3<>/dev/tcp/$IP/22" 2>/dev/null; then return 0; fi
    kill -0 "$(cat "$LAB_RUN/$N.pid")" 2>/dev/null || break
    sleep 0.2
  done
  echo "lab: $N: sshd at $IP did not answer within ${LAB_BOOT_TIMEOUT}s; console:" >&2
  tail -30 "$LAB_RUN/$N.console.log" >&2
  return 1
}
# Shared lock: several hosts may boot at once, but net-down.sh must not remove the bridge meanwhile.
T0=$(date +%s.%N)
if lab_locked -s boot; then
  echo "$N up at $IP ($(awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s)"
else
  "$HERE/host-down.sh" "$N" >/dev/null 2>&1 || true
  exit 1
fi
