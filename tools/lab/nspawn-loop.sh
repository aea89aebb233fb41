#!/usr/bin/env bash
# Runs systemd-nspawn "$@" and starts it again when the container reboots (nspawn exit status 133),
# as systemd-nspawn@.service does with RestartForceExitStatus=133. SIGTERM = clean poweroff.
stop=0; child=
trap 'stop=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM INT
while :; do
  systemd-nspawn "$@" & child=$!
  while :; do wait "$child"; rc=$?; kill -0 "$child" 2>/dev/null || break; done
  if [ "$stop" = 0 ] && [ "$rc" = 133 ]; then echo "== container rebooted, starting it again =="; continue; fi
  exit "$rc"
done
