#!/usr/bin/env bash
# Run molecule scenarios on lab hosts (tools/lab/), one after another.
# usage: tools/molecule.sh [--stages] [SCENARIO ...]
#   no SCENARIO: every scenario under molecule/ (each directory with a molecule.yml)
#   --stages:    run the stages one by one (same sequence as "molecule test") and time each
# Prints the wall time of each scenario (and stage), exits non-zero if any failed, and always
# destroys the hosts of a scenario, also when it fails or this script is interrupted.
# Needs root (lab hosts) and molecule/ansible on PATH (e.g. the project's venv activated).
# A scenario may have an executable molecule/<scenario>/requires.sh: exit 77 means "cannot run
# here" and its output (one line) is the reason; the scenario is then reported SKIPPED with that
# reason, never as passed, and the run does not fail. Any other non-zero exit fails the scenario.
# The collection is made importable as sharedsw.cvmfs through a symlink outside the work tree.
set -uo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$ROOT" || exit 2
STAGES=(destroy syntax create prepare converge idempotence verify)   # then destroy, always
by_stage=0
scenarios=()
for a in "$@"; do
  case $a in
    --stages) by_stage=1 ;;
    -*) echo "molecule.sh: unknown option $a" >&2; exit 2 ;;
    *) scenarios+=("$a") ;;
  esac
done
if [ ${#scenarios[@]} = 0 ]; then
  for f in molecule/*/molecule.yml; do [ -e "$f" ] && scenarios+=("$(basename "$(dirname "$f")")"); done
fi
[ ${#scenarios[@]} -gt 0 ] || { echo "molecule.sh: no scenarios under molecule/" >&2; exit 2; }
command -v molecule >/dev/null || { echo "molecule.sh: molecule is not on PATH (activate the venv)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "molecule.sh: needs root (the lab hosts are systemd-nspawn containers)" >&2; exit 2; }

# ansible_collections/sharedsw/cvmfs -> this work tree (same place tests/conftest.py uses)
COLLECTIONS=${TMPDIR:-/tmp}/sharedsw-cvmfs-collections-$(printf %s "$ROOT" | sha256sum | cut -c1-12)
mkdir -p "$COLLECTIONS/ansible_collections/sharedsw"
ln -sfn "$ROOT" "$COLLECTIONS/ansible_collections/sharedsw/cvmfs"
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS${ANSIBLE_COLLECTIONS_PATH:+:$ANSIBLE_COLLECTIONS_PATH}
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0} PY_COLORS=${PY_COLORS:-0}

# A local CernVM-FS mirror directory (SHAREDSW_CVMFS_PACKAGE_DIR, or ../shared/cvmfs-apt) is served
# on the lab bridge while the scenarios run; the roles read its URL from the environment.
mirror_started=0
if mirror_dir=$(tools/lab/package-mirror.sh dir 2>/dev/null); then
  settings=$(tools/lab/package-mirror.sh start) || { echo "molecule.sh: the package mirror did not start" >&2; exit 1; }
  while IFS='=' read -r k v; do
    case $k in
      LAB_PACKAGE_MIRROR_STARTED) mirror_started=$v ;;
      SHAREDSW_CVMFS_PACKAGE_URL|SHAREDSW_CVMFS_PACKAGE_KEY_URL) export "$k=$v" ;;
    esac
  done <<< "$settings"
  echo "== molecule.sh: CernVM-FS packages from the mirror directory $mirror_dir, served at $SHAREDSW_CVMFS_PACKAGE_URL"
fi

current=
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  if [ -n "$current" ]; then
    echo "== molecule.sh: destroying the hosts of scenario $current"
    molecule destroy -s "$current" >/dev/null 2>&1 || true
  fi
  if [ "$mirror_started" = 1 ]; then tools/lab/package-mirror.sh stop; tools/lab/net-down.sh >/dev/null || true; fi
}
trap cleanup EXIT
# molecule runs in the background so that a signal interrupts the wait at once: it is passed on to
# molecule, and the EXIT trap then destroys the scenario's hosts.
child=; interrupted=0
trap 'interrupted=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null' INT TERM
run() {
  "$@" & child=$!
  local rc
  while :; do wait "$child"; rc=$?; kill -0 "$child" 2>/dev/null || break; done
  child=
  [ "$interrupted" = 0 ] || exit 130
  return "$rc"
}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }
summary=()
failed=0
skipped=0
for s in "${scenarios[@]}"; do
  [ -f "molecule/$s/molecule.yml" ] || { echo "molecule.sh: no scenario '$s'" >&2; summary+=("$s: missing"); failed=1; continue; }
  if [ -x "molecule/$s/requires.sh" ]; then
    reason=$("molecule/$s/requires.sh" 2>&1); rc=$?
    if [ "$rc" = 77 ]; then
      echo "== molecule.sh: scenario $s SKIPPED: $reason"
      summary+=("$s: SKIPPED: $reason"); skipped=$((skipped + 1)); continue
    elif [ "$rc" != 0 ]; then
      summary+=("$s: FAILED (requires.sh rc $rc: $reason)"); failed=1; continue
    fi
  fi
  current=$s
  echo "== molecule.sh: scenario $s"
  t0=$(now); rc=0
  if [ "$by_stage" = 1 ]; then
    times=()
    for stage in "${STAGES[@]}"; do
      ts=$(now)
      run molecule "$stage" -s "$s"; rc=$?
      times+=("$stage $(secs "$ts" "$(now)")s")
      [ $rc = 0 ] || break
    done
    ts=$(now)
    if ! run molecule destroy -s "$s" && [ "$rc" = 0 ]; then rc=1; fi
    times+=("destroy $(secs "$ts" "$(now)")s")
    detail=" (${times[*]})"
  else
    run molecule test -s "$s"; rc=$?
    detail=
  fi
  current=
  result=passed; [ "$rc" = 0 ] || { result="FAILED (rc $rc)"; failed=1; }
  summary+=("$s: $result in $(secs "$t0" "$(now)") s$detail")
done
echo "== molecule.sh summary"
printf '   %s\n' "${summary[@]}"
[ "$skipped" = 0 ] || echo "== molecule.sh: $skipped scenario(s) SKIPPED (not run, not passed)"
exit $failed
