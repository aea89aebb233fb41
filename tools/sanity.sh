#!/bin/bash
# ansible-test sanity on this collection: it must run from .../ansible_collections/sharedsw/cvmfs,
# so copy the tracked and new files there (a copy, not a symlink: ansible-test resolves paths).
# Usage: tools/sanity.sh [ansible-test sanity args...]   e.g. tools/sanity.sh plugins/modules/s3_sync.py
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sharedsw-sanity.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
DEST=$WORK/ansible_collections/sharedsw/cvmfs
mkdir -p "$DEST"
cd "$ROOT"
git ls-files -z --cached --others --exclude-standard | \
  (cd "$ROOT" && xargs -0 -I{} sh -c 'test -e "$1" && echo "$1"' _ {} ) | \
  rsync -a --files-from=- "$ROOT" "$DEST"
cd "$DEST"
git init -q && git add -A && git -c user.name=ci -c user.email=ci@invalid commit -qm sanity
PYVER=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
exec ansible-test sanity --python "$PYVER" --color no "$@"
