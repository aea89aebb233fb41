#!/usr/bin/env bash
# Precondition of the molecule scenarios that install CernVM-FS (stratum0, stratum0-s3, publisher, client, stratum1).
# Exit 0 when lab hosts can install the CernVM-FS packages; otherwise print ONE line starting with
# "CernVM-FS packages unavailable:" and exit 77, which tools/molecule.sh reports as SKIPPED (never
# as passed). Decided without sending anything to the package host: its name must resolve here.
#   SHAREDSW_CVMFS_PACKAGE_URL  a site mirror of the CernVM-FS apt repository (default: upstream)
set -u
url=${SHAREDSW_CVMFS_PACKAGE_URL:-https://cvmrepo.s3.cern.ch/cvmrepo/apt/}
host=$(printf '%s\n' "$url" | sed -E 's#^[a-zA-Z]+://([^/:]+).*#\1#')
if ! getent hosts "$host" >/dev/null 2>&1; then
  echo "CernVM-FS packages unavailable: the package repository host $host does not resolve from this machine" \
       "(set SHAREDSW_CVMFS_PACKAGE_URL to a reachable mirror of $url)"
  exit 77
fi
exit 0
