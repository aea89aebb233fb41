#!/usr/bin/env bash
# This scenario installs CernVM-FS: skipped (exit 77, one-line reason) where the packages are unavailable.
exec "$(dirname "$(readlink -f "$0")")/../shared/requires-cvmfs.sh"
