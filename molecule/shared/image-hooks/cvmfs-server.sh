#!/bin/sh
# lab-image-provides: cvmfs
# Lab image hook (tools/lab/build-image.sh runs it in the image, as root, at build time): CernVM-FS
# server packages preinstalled, as a site's golden image would carry them. They come from the mirror
# that tools/molecule.sh serves (SHAREDSW_CVMFS_PACKAGE_URL / _KEY_URL); the package source is
# removed again, so a role that configured none is seen to have configured none. cvmfs-gateway is
# left out: its postinst needs systemd as PID 1, which an image build does not have.
set -eu
: "${SHAREDSW_CVMFS_PACKAGE_URL:?the mirror URL (tools/molecule.sh serves it)}"
key=/etc/apt/keyrings/lab-preinstall-cernvm.gpg
mkdir -p /etc/apt/keyrings
curl -fsS -o "$key" "${SHAREDSW_CVMFS_PACKAGE_KEY_URL:-${SHAREDSW_CVMFS_PACKAGE_URL}cernvm.gpg}"
echo "deb [signed-by=$key] $SHAREDSW_CVMFS_PACKAGE_URL bookworm-prod main" > /etc/apt/sources.list.d/lab-preinstall.list
apt-get update -q
apt-get install -y -q --no-install-recommends cvmfs cvmfs-server apache2
rm -f /etc/apt/sources.list.d/lab-preinstall.list "$key"
apt-get update -q
