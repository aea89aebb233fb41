# shellcheck shell=bash disable=SC2034  # settings used by the scripts that source this file
# Settings shared by the lab host scripts (sourced, not run). Every value can be overridden from
# the environment. Nothing here lives inside the git work tree.
#
# Address plan on the lab bridge (LAB_NET):
#   .1        the bridge itself = default gateway of every lab host (NAT to the uplink)
#   .10-.99   molecule scenarios, a block of ten per scenario (squid: .10-.19, lab: .20-.29, ...)
#   .100-.139 `make lab` (tools/lab.sh, hosts listed in tools/lab/lab-hosts)
#   .140-.169 the molecule scenarios external, hardened and metrics
# Host names are machine names too, so they must be unique across scenarios and the lab.

LAB_CACHE_DIR=${LAB_CACHE_DIR:-/var/cache/sharedsw-cvmfs-lab}   # base images (keep between CI runs)
LAB_STATE_DIR=${LAB_STATE_DIR:-/run/sharedsw-cvmfs-lab}         # host roots, pid files, console logs, ssh key
LAB_SUITE=${LAB_SUITE:-bookworm}
LAB_MIRROR_SOURCES=${LAB_MIRROR_SOURCES:-}   # apt sources file for the image; default: this machine's
LAB_IMAGE_HOOK=${LAB_IMAGE_HOOK:-}           # script run inside the image (chroot) at build time
LAB_BRIDGE=${LAB_BRIDGE:-cvmfslab0}
LAB_GW=${LAB_GW:-10.77.0.1}                  # bridge address = default gateway of the hosts
LAB_PREFIX=${LAB_PREFIX:-24}
LAB_NFT_TABLE=${LAB_NFT_TABLE:-sharedsw_cvmfs_lab}
LAB_TMPFS=${LAB_TMPFS:-4g}   # host root on a tmpfs of this maximum size; 0 = on disk under LAB_STATE_DIR
LAB_SSH_KEY=${LAB_SSH_KEY:-$LAB_STATE_DIR/ssh/id_ed25519}
LAB_BOOT_TIMEOUT=${LAB_BOOT_TIMEOUT:-60}     # seconds to wait for sshd of one host
# kmod: modprobe answers from modules.builtin (host-up.sh), as cvmfs_server's overlayfs check needs
LAB_PACKAGES=${LAB_PACKAGES:-systemd-sysv,dbus,python3,python3-apt,openssh-server,iproute2,iputils-ping,ca-certificates,sudo,procps,less,curl,kmod}
LAB_MIRROR_PORT=${LAB_MIRROR_PORT:-8480}     # package-mirror.sh serves a mirror directory here, on LAB_GW

LAB_TOOLS=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
LAB_RUN=$LAB_STATE_DIR/run
LAB_MACHINES=$LAB_STATE_DIR/machines
LAB_LOCK=$LAB_STATE_DIR/lab.lock

# The local CernVM-FS package mirror directory to serve (package-mirror.sh): SHAREDSW_CVMFS_PACKAGE_DIR,
# else ../shared/cvmfs-apt beside the checkout when no package URL is given. Exit 1: none.
lab_package_dir() {
  if [ -n "${SHAREDSW_CVMFS_PACKAGE_DIR:-}" ]; then echo "$SHAREDSW_CVMFS_PACKAGE_DIR"; return 0; fi
  [ -z "${SHAREDSW_CVMFS_PACKAGE_URL:-}" ] || return 1
  local shared
  shared=$(readlink -f "$LAB_TOOLS/../../../shared/cvmfs-apt" 2>/dev/null) || return 1
  [ -d "$shared/dists" ] || return 1
  echo "$shared"
}

lab_die() { echo "lab: $*" >&2; exit 1; }

lab_require_root() { [ "$(id -u)" = 0 ] || lab_die "needs root (bridge, nftables, mounts, systemd-nspawn)"; }

lab_uplink() { ip route show default | awk '{print $5; exit}'; }

# The apt sources copied into the image: LAB_MIRROR_SOURCES or this machine's own.
lab_sources() {
  if [ -n "$LAB_MIRROR_SOURCES" ]; then echo "$LAB_MIRROR_SOURCES"
  elif [ -f /etc/apt/sources.list.d/debian.sources ]; then echo /etc/apt/sources.list.d/debian.sources
  else echo /etc/apt/sources.list; fi
}

# apt.conf files of this machine that carry a proxy or validity setting; copied into the image.
lab_apt_conf_files() {
  grep -lsiE 'Acquire::[a-z]+::Proxy|Check-Valid-Until|Check-Date' /etc/apt/apt.conf /etc/apt/apt.conf.d/* | sort || true
}

lab_ca_files() { find /usr/local/share/ca-certificates -name '*.crt' -type f 2>/dev/null | sort; }

# The image file name carries a hash of everything that goes into it: the build script, the
# package list, the suite, the apt sources/config/CA files copied in, and the site hook's content.
# Change any of them and the next build-image.sh builds a new image.
lab_image_key() {
  {
    cat "$LAB_TOOLS/build-image.sh"
    echo "suite=$LAB_SUITE packages=$LAB_PACKAGES"
    local f
    for f in "$(lab_sources)" $(lab_apt_conf_files) $(lab_ca_files); do echo "== $f"; cat "$f"; done
    if [ -n "$LAB_IMAGE_HOOK" ]; then echo "== hook"; cat "$LAB_IMAGE_HOOK"; fi
  } | sha256sum | cut -c1-16
}

lab_image() { echo "${LAB_IMAGE:-$LAB_CACHE_DIR/debian-$LAB_SUITE-$(lab_image_key).tar.zst}"; }

# Run "$@" holding the lab lock: shared for host-up (bridge in use: a booted host's nspawn keeps
# holding it), exclusive and not waiting for net-down (-xn: while any host is up, nothing to do).
lab_locked() {
  local mode=$1; shift
  mkdir -p "$LAB_STATE_DIR"
  ( flock "$mode" 9 || { echo "lab network in use by a host; keeping it"; exit 0; }; "$@" ) 9>"$LAB_LOCK"
}
