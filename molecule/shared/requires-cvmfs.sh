#!/usr/bin/env bash
# Precondition of the molecule scenarios that install CernVM-FS (stratum0, stratum0-s3, publisher, client, stratum1, full-stack).
# Exit 0 when lab hosts can install the CernVM-FS packages; otherwise print ONE line starting with
# "CernVM-FS packages unavailable:" and exit 77, which tools/molecule.sh reports as SKIPPED (never
# as passed). Decided without sending anything to the package host. In this order:
#   a local mirror directory (SHAREDSW_CVMFS_PACKAGE_DIR, or ../shared/cvmfs-apt beside the checkout
#     when no URL is given): tools/lab/package-mirror.sh serves it on the lab bridge
#   SHAREDSW_CVMFS_PACKAGE_URL  a site mirror: an address literal, or a name that resolves here
#   the upstream repository, when its host name resolves here
set -u
LAB=$(dirname "$(readlink -f "$0")")/../../tools/lab
if "$LAB/package-mirror.sh" dir >/dev/null 2>&1; then exit 0; fi
url=${SHAREDSW_CVMFS_PACKAGE_URL:-https://cvmrepo.s3.cern.ch/cvmrepo/apt/}
host=$(printf '%s\n' "$url" | sed -E 's#^[a-zA-Z]+://(\[[^]]*\]|[^/:]+).*#\1#')
is_address() { python3 -c 'import ipaddress, sys; ipaddress.ip_address(sys.argv[1].strip("[]"))' "$1" 2>/dev/null; }
if ! is_address "$host" && ! getent hosts "$host" >/dev/null 2>&1; then
  echo "CernVM-FS packages unavailable: the package repository host $host does not resolve from this machine" \
       "(set SHAREDSW_CVMFS_PACKAGE_URL to a reachable mirror of $url, or SHAREDSW_CVMFS_PACKAGE_DIR to a mirror directory)"
  exit 77
fi
exit 0
