#!/usr/bin/env bash
# Run molecule scenarios on lab hosts (tools/lab/).
# usage: tools/molecule.sh [--stages] [--jobs N] [SCENARIO ...]
#   no SCENARIO: every scenario under molecule/ (each directory with a molecule.yml)
#   --stages:    run the stages one by one (same sequence as "molecule test") and time each
#   --jobs N:    run up to N scenarios at once (default 1; MOLECULE_JOBS). Their hosts have their own
#                addresses and names (tools/lab/README.md), their services their own ports. Each
#                scenario's output goes to tests/output/molecule/<scenario>.log and is printed when
#                it ends, so runs never interleave.
# MOLECULE_RETRIES (default 1): a failed scenario runs that many more times on new hosts; see scenario().
# Prints the wall time of each scenario (and stage), exits non-zero if any failed, and always
# destroys the hosts of a scenario, also when it fails or this script is interrupted.
# Needs root (lab hosts) and molecule/ansible on PATH (e.g. the project's venv activated).
# A scenario may have an executable molecule/<scenario>/requires.sh: exit 77 means "cannot run
# here" and its output (one line) is the reason; the scenario is then reported SKIPPED with that
# reason, never as passed, and the run does not fail. Any other non-zero exit fails the scenario.
# A local CernVM-FS mirror directory (SHAREDSW_CVMFS_PACKAGE_DIR, or ../shared/cvmfs-apt) is served
# on the lab bridge while the scenarios run (tools/lab/package-mirror.sh); the roles read its URL
# from the environment.
# The collection is made importable as sharedsw.cvmfs through a symlink outside the work tree.
set -uo pipefail
ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
cd "$ROOT" || exit 2
STAGES=(destroy syntax create prepare converge idempotence verify)   # then destroy, always
LOGS=$ROOT/tests/output/molecule
by_stage=0
jobs=${MOLECULE_JOBS:-1}
scenarios=()
while [ $# -gt 0 ]; do
  case $1 in
    --stages) by_stage=1 ;;
    --jobs) jobs=${2:-}; shift ;;
    -*) echo "molecule.sh: unknown option $1" >&2; exit 2 ;;
    *) scenarios+=("$1") ;;
  esac
  shift
done
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "molecule.sh: --jobs wants a positive number, got '$jobs'" >&2; exit 2; }
if [ ${#scenarios[@]} = 0 ]; then
  # the longest first (measured), so that --jobs keeps every slot busy to the end; then the rest
  for s in full-stack stratum1 publisher stratum0 client; do [ -e "molecule/$s/molecule.yml" ] && scenarios+=("$s"); done
  for f in molecule/*/molecule.yml; do
    s=$(basename "$(dirname "$f")")
    [[ " ${scenarios[*]} " == *" $s "* ]] || scenarios+=("$s")
  done
fi
[ ${#scenarios[@]} -gt 0 ] || { echo "molecule.sh: no scenarios under molecule/" >&2; exit 2; }
command -v molecule >/dev/null || { echo "molecule.sh: molecule is not on PATH (activate the venv)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "molecule.sh: needs root (the lab hosts are systemd-nspawn containers)" >&2; exit 2; }

# ansible_collections/sharedsw/cvmfs -> this work tree (same place tests/conftest.py uses)
COLLECTIONS=${TMPDIR:-/tmp}/sharedsw-cvmfs-collections-$(printf %s "$ROOT" | sha256sum | cut -c1-12)
mkdir -p "$COLLECTIONS/ansible_collections/sharedsw" "$LOGS"
ln -sfn "$ROOT" "$COLLECTIONS/ansible_collections/sharedsw/cvmfs"
export ANSIBLE_COLLECTIONS_PATH=$COLLECTIONS${ANSIBLE_COLLECTIONS_PATH:+:$ANSIBLE_COLLECTIONS_PATH}
export ANSIBLE_FORCE_COLOR=${ANSIBLE_FORCE_COLOR:-0} PY_COLORS=${PY_COLORS:-0}

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

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", b-a}'; }

# One scenario, all its stages, its hosts destroyed at the end; the last line of its output is
# "RESULT <scenario>: passed|FAILED (rc N) in S s (stage times)". Runs in a child of this script.
# A failed scenario runs once more (MOLECULE_RETRIES, default 1) on new hosts; a pass on a later
# attempt still says so in its result, and the failure digest keeps the first attempt's error.
scenario() {
  local s=$1 t0 rc attempt=1 retries=${MOLECULE_RETRIES:-1} first_failure='' detail=''
  t0=$(now)
  while :; do
    attempt_once "$s"; rc=$?
    if [ "$rc" = 0 ] || [ "$attempt" -gt "$retries" ]; then break; fi
    first_failure="${first_failure:+$first_failure, }attempt $attempt failed rc $rc"
    echo "== molecule.sh: scenario $s failed (rc $rc); attempt $((attempt + 1)) on new hosts"
    attempt=$((attempt + 1))
  done
  local result=passed
  [ "$rc" = 0 ] || result="FAILED (rc $rc)"
  echo "RESULT $s: $result in $(secs "$t0" "$(now)") s$detail${first_failure:+ (attempt $attempt; $first_failure)}"
}

# One run of every stage; the hosts are destroyed at the end. Sets $detail (stage times).
attempt_once() {
  local s=$1 rc=0 stage ts times=()
  local m=
  detail=''
  trap '[ -z "$m" ] || { kill -TERM "$m" 2>/dev/null; wait "$m"; }; molecule destroy -s "$s" >/dev/null 2>&1; exit 130' TERM INT
  if [ "$by_stage" = 1 ]; then
    for stage in "${STAGES[@]}"; do
      ts=$(now)
      molecule "$stage" -s "$s" & m=$!; wait "$m"; rc=$?
      times+=("$stage $(secs "$ts" "$(now)")s")
      [ $rc = 0 ] || break
    done
    ts=$(now)
    molecule destroy -s "$s" & m=$!
    if ! wait "$m" && [ "$rc" = 0 ]; then rc=1; fi
    times+=("destroy $(secs "$ts" "$(now)")s")
    detail=" (${times[*]})"
  else
    molecule test -s "$s" & m=$!; wait "$m"; rc=$?
    [ "$rc" = 0 ] || molecule destroy -s "$s" >/dev/null 2>&1
  fi
  return "$rc"
}

declare -A running=()   # pid -> scenario
summary=()
failed=0
skipped=0
# shellcheck disable=SC2317  # called by the traps
cleanup() {
  local pid
  for pid in "${!running[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${!running[@]}"; do
    echo "== molecule.sh: destroying the hosts of scenario ${running[$pid]}"; wait "$pid" 2>/dev/null
  done
  running=()
  if [ "$mirror_started" = 1 ]; then tools/lab/package-mirror.sh stop; tools/lab/net-down.sh >/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

finish_one() {   # wait for any running scenario, print its log and record its result
  local pid s line
  wait -n -p pid "${!running[@]}" 2>/dev/null
  [ "$jobs" != 1 ] || wait    # the tail of its output
  s=${running[$pid]}; unset "running[$pid]"
  [ "$jobs" = 1 ] || { echo "== molecule.sh: scenario $s (output of $LOGS/$s.log)"; cat "$LOGS/$s.log"; }
  line=$(grep '^RESULT ' "$LOGS/$s.log" | tail -1)
  [ -n "$line" ] || line="RESULT $s: FAILED (no result: interrupted?)"
  summary+=("${line#RESULT }")
  case $line in *": passed in "*) ;; *) failed=1 ;; esac
}

# Why each failed scenario failed, in a few lines (the report at the end of `make test` prints it, so
# a CI log that keeps only its tail still says what went wrong).
DIGEST=$ROOT/tests/output/molecule-failures.txt
write_failure_digest() {
  local entry s
  : > "$DIGEST"
  for entry in "${summary[@]}"; do
    case $entry in *"failed rc"*) ;; *": passed in "*|*": SKIPPED"*) continue ;; esac
    s=${entry%%:*}
    { echo "-- $entry"
      [ -f "$LOGS/$s.log" ] && grep -n -B2 -A12 -E '^fatal:|FAILED!|^ERROR|Traceback|^E  |CRITICAL' "$LOGS/$s.log" | head -n 80
    } >> "$DIGEST"
  done
}

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
  while [ ${#running[@]} -ge "$jobs" ]; do finish_one; done
  echo "== molecule.sh: scenario $s"
  scenario "$s" > "$LOGS/$s.log" 2>&1 & running[$!]=$s
  # one at a time: its output as it comes (in the background, so a signal is handled at once)
  [ "$jobs" != 1 ] || tail -n +1 --pid=$! -f "$LOGS/$s.log" &
done
while [ ${#running[@]} -gt 0 ]; do finish_one; done
write_failure_digest
echo "== molecule.sh summary"
printf '   %s\n' "${summary[@]}"
[ "$skipped" = 0 ] || echo "== molecule.sh: $skipped scenario(s) SKIPPED (not run, not passed)"
exit $failed
