#!/usr/bin/env bash
# Install everything `make test` and `make lab` need on a fresh Debian 12 machine, as root:
# Debian packages (real test services, lab-host tooling) and a Python venv with our requirements.
# Re-running is cheap: each step is skipped when its inputs have not changed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
STAMPS=$VENV/.stamps

APT_PACKAGES=(
  # real test services (tests/harness)
  radosgw ceph-mon ceph-osd rabbitmq-server squid apache2
  # stratum-1 role tests: GeoAPI through mod_wsgi, the logrotate file checked by logrotate
  libapache2-mod-wsgi-py3 logrotate
  # lab hosts (tools/lab): systemd-nspawn containers on a private bridge
  mmdebstrap systemd-container nftables iproute2 zstd openssh-client rsync
  # the distribution Python our host programs run under (tested with it too)
  python3-hvac python3-cryptography python3-boto3 python3-pika
  # general
  python3-venv ca-certificates curl git make shellcheck procps util-linux
)

# Package scripts must never start daemons on this machine (they would listen on 0.0.0.0).
if [ ! -x /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\n# installed by sharedsw.cvmfs tools/deps.sh: no daemon starts from package scripts\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing Debian packages: ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${missing[@]}"
fi

mkdir -p "$(dirname "$VENV")"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
mkdir -p "$STAMPS"
want=$(cat "$ROOT/requirements.txt" "$ROOT/requirements-test.txt" | sha256sum | cut -c1-16)
if [ ! -f "$STAMPS/pip-$want" ]; then
  echo "deps: installing Python requirements into $VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -r "$ROOT/requirements.txt" -r "$ROOT/requirements-test.txt"
  rm -f "$STAMPS"/pip-*; touch "$STAMPS/pip-$want"
fi
echo "deps: ready ($("$VENV/bin/ansible" --version | head -1))"
