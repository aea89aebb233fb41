#!/usr/bin/env bash
# Serve a local mirror DIRECTORY of the CernVM-FS apt repository to the lab hosts, over HTTP on the
# lab bridge address only (never on a public interface), for as long as the caller needs it.
# usage: package-mirror.sh start   serve it (reuses a server already serving the same directory);
#                                  prints the two settings the roles read, for eval:
#                                    SHAREDSW_CVMFS_PACKAGE_URL=http://<bridge>:<port>/
#                                    SHAREDSW_CVMFS_PACKAGE_KEY_URL=http://<bridge>:<port>/cernvm.gpg
#                                  and LAB_PACKAGE_MIRROR_STARTED=1 when this call started the server
#                                  (0: it was serving already): stop it only if you started it
#        package-mirror.sh stop    stop the server
#        package-mirror.sh dir     print the directory that would be served (exit 1: none)
#        package-mirror.sh status  "serving DIR at URL" or "not serving" (exit 1)
# The directory: SHAREDSW_CVMFS_PACKAGE_DIR, else ../shared/cvmfs-apt next to the checkout when it
# exists and no SHAREDSW_CVMFS_PACKAGE_URL is given (that URL always wins: it is served already).
# It must hold dists/<suite>/InRelease (or Release) and the signing key as cernvm.gpg, unless
# SHAREDSW_CVMFS_PACKAGE_KEY_URL names the key.
set -euo pipefail
HERE=$(dirname "$(readlink -f "$0")")
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"
PID_FILE=$LAB_STATE_DIR/package-mirror.pid
DIR_FILE=$LAB_STATE_DIR/package-mirror.dir
LOG=$LAB_STATE_DIR/package-mirror.log
URL=http://$LAB_GW:$LAB_MIRROR_PORT/

SERVER='
import functools, http.server, sys
http.server.ThreadingHTTPServer.request_queue_size = 256
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[3])
http.server.ThreadingHTTPServer((sys.argv[1], int(sys.argv[2])), handler).serve_forever()
'

serving() { [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; }

check_dir() {   # $1 = directory: an apt repository with a Release file (and the key)
  local d=$1
  [ -d "$d" ] || lab_die "SHAREDSW_CVMFS_PACKAGE_DIR=$d is not a directory"
  compgen -G "$d/dists/*/InRelease" >/dev/null || compgen -G "$d/dists/*/Release" >/dev/null \
    || lab_die "package mirror $d has no dists/<suite>/InRelease or Release: not an apt repository"
  [ -f "$d/cernvm.gpg" ] || [ -n "${SHAREDSW_CVMFS_PACKAGE_KEY_URL:-}" ] \
    || lab_die "package mirror $d has no cernvm.gpg (the repository signing key): add it, or set SHAREDSW_CVMFS_PACKAGE_KEY_URL"
}

print_settings() {   # $1 = 1 when this call started the server
  echo "LAB_PACKAGE_MIRROR_STARTED=$1"
  echo "SHAREDSW_CVMFS_PACKAGE_URL=$URL"
  echo "SHAREDSW_CVMFS_PACKAGE_KEY_URL=${SHAREDSW_CVMFS_PACKAGE_KEY_URL:-${URL}cernvm.gpg}"
}

start() {
  local dir
  dir=$(lab_package_dir) || lab_die "no package mirror directory: set SHAREDSW_CVMFS_PACKAGE_DIR"
  dir=$(readlink -f "$dir")
  check_dir "$dir"
  lab_require_root
  "$HERE/net-up.sh"                     # the bridge address the server binds to
  exec 6>"$LAB_STATE_DIR/package-mirror.lock"
  flock 6
  if serving && [ "$(cat "$DIR_FILE" 2>/dev/null)" = "$dir" ]; then print_settings 0; return 0; fi
  stop_server
  # http.server's listen backlog of 5 drops connections when several hosts install at once
  setsid python3 -c "$SERVER" "$LAB_GW" "$LAB_MIRROR_PORT" "$dir" \
    </dev/null >"$LOG" 2>&1 6>&- &   # 6>&-: the server must not hold the start lock
  echo $! > "$PID_FILE"; echo "$dir" > "$DIR_FILE"
  local i
  for ((i = 0; i < 50; i++)); do
    if curl -sf -o /dev/null "${URL}dists/"; then print_settings 1; return 0; fi
    serving || break
    sleep 0.1
  done
  tail -5 "$LOG" >&2
  stop_server
  lab_die "the package mirror did not answer at $URL (log: $LOG)"
}

stop_server() {
  if serving; then kill "$(cat "$PID_FILE")" 2>/dev/null || true; fi
  rm -f "$PID_FILE" "$DIR_FILE"
}

case ${1:-} in
  start) start ;;
  stop) lab_require_root; stop_server ;;
  dir) lab_package_dir ;;
  status) if serving; then echo "serving $(cat "$DIR_FILE") at $URL"; else echo "not serving"; exit 1; fi ;;
  *) echo "usage: package-mirror.sh start|stop|dir|status" >&2; exit 2 ;;
esac
