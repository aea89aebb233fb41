#!/usr/bin/env bash
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
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\n' "$f"; done | \
  rsync -a --files-from=- "$ROOT" "$DEST"
cd "$DEST"
git init -q && git add -A && git -c user.name=ci -c user.email=ci@invalid commit -qm sanity
# ansible-test bootstraps pip in its own venvs with a get-pip script fetched from a host outside
# the package registries. Give it a local stand-in: `pip install --upgrade --force-reinstall ARGS`
# run by this venv's pip, which takes the pinned pip release from the package index as usual.
PIP_PIN=$(python3 -c 'import re, inspect, ansible_test._internal.python_requirements as m; print(re.search(r"pip=.([0-9.]+)", inspect.getsource(m.get_venv_packages)).group(1))')
SHIM=~/.ansible/test/cache/get_pip_${PIP_PIN//./_}.py
if [ ! -s "$SHIM" ]; then
  mkdir -p "$(dirname "$SHIM")"
  PIP_DIR=$(python3 -c 'import os, pip; print(os.path.dirname(os.path.dirname(pip.__file__)))')
  cat > "$SHIM" <<PY
# Local stand-in for get-pip.py, written by sharedsw.cvmfs tools/sanity.sh.
import runpy, sys
sys.path.insert(0, "$PIP_DIR")
GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")
sys.argv = ["pip", "install", "--upgrade", "--force-reinstall"] + [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
PY
fi
PYVER=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
exec ansible-test sanity --python "$PYVER" --color no "$@"
