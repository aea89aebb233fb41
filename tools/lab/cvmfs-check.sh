#!/usr/bin/env bash
# Step 1 of `make lab`: can the lab hosts get the CernVM-FS packages? Creates nothing, sends
# nothing anywhere (only name resolution and reading the lab image cache).
# usage: cvmfs-check.sh
# On success prints one word on stdout and exits 0:
#   preinstalled  the lab image carries CernVM-FS: LAB_IMAGE_HOOK declares it with a line
#                 "# lab-image-provides: cvmfs" (checked again in the built image by
#                 cvmfs-check.sh --image), or the cached image of the current hook has usr/bin/cvmfs_server
#   repository    the CernVM-FS package repository host (or the mirror in SHAREDSW_CVMFS_PACKAGE_URL)
#                 resolves from this machine
# Otherwise prints ONE line "CernVM-FS packages unavailable: ..." on stdout and exits 77.
# usage: cvmfs-check.sh --image    after the image is built: exit 0 if it has usr/bin/cvmfs_server,
#                                  else the one line and 77
set -uo pipefail
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"
REQUIRES=$HERE/../../molecule/shared/requires-cvmfs.sh
HOOK_HINT="preinstall it in the lab image with LAB_IMAGE_HOOK and a '# lab-image-provides: cvmfs' line, see tools/lab/README.md"

image_has_cvmfs() {   # $1 = image (.tar.zst); grep reads to the end (-q would make tar fail on SIGPIPE)
  tar -I zstd -tf "$1" 2>/dev/null | grep -x -E '(\./)?usr/bin/cvmfs_server' >/dev/null
}

hook_declares_cvmfs() {
  [ -n "$LAB_IMAGE_HOOK" ] && [ -r "$LAB_IMAGE_HOOK" ] \
    && grep -q -E '^#[[:space:]]*lab-image-provides:.*\bcvmfs\b' "$LAB_IMAGE_HOOK"
}

if [ "${1:-}" = --image ]; then
  image=$(lab_image)
  if [ -s "$image" ] && image_has_cvmfs "$image"; then exit 0; fi
  echo "CernVM-FS packages unavailable: LAB_IMAGE_HOOK $LAB_IMAGE_HOOK declares CernVM-FS but the image" \
       "$image has no usr/bin/cvmfs_server (fix the hook; its content is part of the image name, so a changed hook builds a new image)"
  exit 77
fi
[ $# = 0 ] || lab_die "usage: cvmfs-check.sh [--image]"

if [ -n "$LAB_IMAGE_HOOK" ]; then
  [ -r "$LAB_IMAGE_HOOK" ] || lab_die "LAB_IMAGE_HOOK=$LAB_IMAGE_HOOK is not a readable file"
  if hook_declares_cvmfs; then echo preinstalled; exit 0; fi
  image=$(lab_image)
  if [ -s "$image" ] && image_has_cvmfs "$image"; then echo preinstalled; exit 0; fi
fi
reason=$("$REQUIRES"); rc=$?
case $rc in
  0) echo repository; exit 0 ;;
  77) echo "$reason; or $HOOK_HINT"; exit 77 ;;
  *) echo "CernVM-FS packages unavailable: $REQUIRES failed (rc $rc): $reason"; exit 77 ;;
esac
