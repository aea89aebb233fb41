#!/usr/bin/env bash
# Build the lab hosts' base root filesystem once and cache it as a .tar.zst (see common.sh).
# usage: build-image.sh [--force] [--prune] [--print-path]
#   --force       rebuild even if the cached image exists
#   --prune       delete cached images other than the current one
#   --print-path  print the image path and exit (no build)
# LAB_IMAGE_HOOK=/path/script runs inside the image (chroot, as root, DEBIAN_FRONTEND=noninteractive,
# services prevented from starting) after the base packages are installed; its content is part of
# the image's cache key, so a changed hook means a new image.
# shellcheck disable=SC2016  # the mmdebstrap hooks are expanded by mmdebstrap, not here
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$(dirname "$(readlink -f "$0")")/common.sh"
force=0; prune=0
for a in "$@"; do
  case $a in
    --force) force=1 ;;
    --prune) prune=1 ;;
    --print-path) lab_image; exit 0 ;;
    *) lab_die "build-image.sh: unknown argument '$a' (expected --force, --prune or --print-path)" ;;
  esac
done
lab_require_root
[ -z "$LAB_IMAGE_HOOK" ] || [ -r "$LAB_IMAGE_HOOK" ] || lab_die "LAB_IMAGE_HOOK=$LAB_IMAGE_HOOK is not a readable file"
IMAGE=$(lab_image)
mkdir -p "$LAB_CACHE_DIR"
exec 8>"$LAB_CACHE_DIR/.build.lock"
flock 8                                  # one build at a time; a waiting caller then finds it cached
if [ -s "$IMAGE" ] && [ "$force" = 0 ]; then
  echo "cached: $IMAGE"
else
  T0=$SECONDS
  SRC=$(lab_sources)
  HOOKS=()
  for f in $(lab_apt_conf_files); do
    HOOKS+=(--setup-hook="mkdir -p \"\$1/etc/apt/apt.conf.d\" && cp '$f' \"\$1/etc/apt/apt.conf.d/\"")
  done
  if [ -n "$(lab_ca_files)" ]; then
    HOOKS+=(--customize-hook='cp /usr/local/share/ca-certificates/*.crt "$1/usr/local/share/ca-certificates/" && chroot "$1" update-ca-certificates >/dev/null')
  fi
  if [ -n "$LAB_IMAGE_HOOK" ]; then
    HOOKS+=(--customize-hook="cp '$(readlink -f "$LAB_IMAGE_HOOK")' \"\$1/root/lab-image-hook\" && chmod 755 \"\$1/root/lab-image-hook\"")
    HOOKS+=(--customize-hook='chroot "$1" env DEBIAN_FRONTEND=noninteractive /root/lab-image-hook')
    HOOKS+=(--customize-hook='rm -f "$1/root/lab-image-hook"')
  fi
  # --skip=cleanup/apt/lists: keep the apt lists, or roles using apt's cache_valid_time would see
  # a "fresh" but empty cache. ssh host keys and machine-id are made per host at boot. Masked:
  # apt's timers (they would grab the dpkg lock mid-converge) and the rpc_pipefs mounts that
  # nfs-common (pulled in by autofs) cannot do in a container (they would leave systemd "degraded"),
  # and systemd-network-generator (network from the kernel command line: the machine's, never the
  # host's; it failed now and then under load, leaving the host "degraded").
  LOG=$LAB_CACHE_DIR/build.log
  echo "building $IMAGE (log: $LOG)"
  if ! mmdebstrap --variant=apt --components=main --skip=cleanup/apt/lists \
    --include="$LAB_PACKAGES" \
    "${HOOKS[@]}" \
    --customize-hook='systemctl --root="$1" mask apt-daily.timer apt-daily-upgrade.timer' \
    --customize-hook='systemctl --root="$1" mask run-rpc_pipefs.mount var-lib-nfs-rpc_pipefs.mount' \
    --customize-hook='systemctl --root="$1" mask systemd-network-generator.service' \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_* "$1"/etc/hostname; : > "$1"/etc/machine-id' \
    "$LAB_SUITE" "$IMAGE.tmp.tar.zst" "$SRC" >"$LOG" 2>&1; then
    tail -25 "$LOG" >&2; rm -f "$IMAGE.tmp.tar.zst"; lab_die "image build failed (log: $LOG)"
  fi
  mv "$IMAGE.tmp.tar.zst" "$IMAGE"
  echo "built: $IMAGE ($(du -h "$IMAGE" | cut -f1)) in $((SECONDS - T0)) s"
fi
if [ "$prune" = 1 ]; then
  find "$LAB_CACHE_DIR" -maxdepth 1 -name '*.tar.zst' ! -path "$IMAGE" -print -delete
fi
