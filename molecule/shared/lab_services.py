#!/usr/bin/env python
"""Test services of the harness made reachable from lab hosts, for molecule scenarios.

    lab_services.py start STATE_DIR KIND HOST_IPS SSH_KEY [REMOTE_PORT]   (KIND: ceph | seaweedfs | openbao | rabbitmq)
    lab_services.py stop STATE_DIR

`start` runs the harness server (tests/harness, bound to 127.0.0.1 on this machine, as in the
pytest suite) in a detached child, and one ssh reverse tunnel per lab host (HOST_IPS,
comma-separated) so that 127.0.0.1:REMOTE_PORT on each reaches it. Without REMOTE_PORT the port
is the server's own, so one URL (http://127.0.0.1:PORT) works here and on the lab hosts. Nothing listens on any other address. It waits until both are up,
then writes STATE_DIR/service.json (endpoint as seen from the lab host, credentials) and returns.
`stop` ends the tunnel and the server (by the pids it recorded) and removes STATE_DIR.
"""

import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def serve(state_dir, kind, host_ips, ssh_key, remote_port=None):
    sys.path.insert(0, ROOT)
    from tests.harness.ceph import CephRGW
    from tests.harness.openbao import OpenBaoDev
    from tests.harness.rabbitmq import RabbitMQ
    from tests.harness.seaweedfs import SeaweedFS
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))  # run the harness cleanup on stop
    service = {"ceph": CephRGW, "seaweedfs": SeaweedFS, "openbao": OpenBaoDev, "rabbitmq": RabbitMQ}[kind]()
    stop = os.path.join(state_dir, "stop")
    with service:
        if kind == "rabbitmq":
            local = "amqp://%s:%d" % (service.host, service.port)
        else:
            local = service.url if kind == "openbao" else service.endpoint_url
        port = int(local.rsplit(":", 1)[1])
        remote = int(remote_port) if remote_port else port
        tunnels = [subprocess.Popen(
            ["ssh", "-N", "-i", ssh_key, "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "ExitOnForwardFailure=yes", "-o", "ServerAliveInterval=10", "-o", "LogLevel=ERROR",
             "-R", "127.0.0.1:%d:127.0.0.1:%d" % (remote, port), "root@" + host_ip],
            stdin=subprocess.DEVNULL) for host_ip in host_ips.split(",")]
        scheme = "amqp" if kind == "rabbitmq" else "http"
        state = {"kind": kind, "local": local, "remote": "%s://127.0.0.1:%d" % (scheme, remote),
                 "port": remote, "tunnel_pids": [t.pid for t in tunnels]}
        if kind == "openbao":
            state["token"] = service.root_token
        elif kind == "rabbitmq":
            state.update(username=service.user, password=service.password)
        else:
            state.update(access_key=service.access_key, secret_key=service.secret_key, region=service.region)
        time.sleep(2)
        ended = [t for t in tunnels if t.poll() is not None]
        if ended:
            raise SystemExit("an ssh tunnel to %s ended at once" % host_ips)
        with open(os.path.join(state_dir, "service.json.tmp"), "w") as handle:
            json.dump(state, handle)
        os.rename(os.path.join(state_dir, "service.json.tmp"), os.path.join(state_dir, "service.json"))
        while not os.path.exists(stop) and all(t.poll() is None for t in tunnels):
            time.sleep(0.5)
        for tunnel in tunnels:
            if tunnel.poll() is None:
                tunnel.terminate()
            tunnel.wait()


def main(argv):
    if argv[:1] == ["start"]:
        state_dir = argv[1]
        os.makedirs(state_dir, exist_ok=True)
        log = open(os.path.join(state_dir, "service.log"), "a")
        child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "serve"] + argv[1:],
                                 stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        with open(os.path.join(state_dir, "pid"), "w") as handle:
            handle.write("%d\n" % child.pid)
        deadline = time.time() + 180
        while time.time() < deadline:
            if os.path.exists(os.path.join(state_dir, "service.json")):
                print(open(os.path.join(state_dir, "service.json")).read())
                return 0
            if child.poll() is not None:
                sys.stderr.write(open(os.path.join(state_dir, "service.log")).read()[-3000:])
                return 1
            time.sleep(0.5)
        return 1
    if argv[:1] == ["serve"]:
        serve(*argv[1:])
        return 0
    if argv[:1] == ["stop"]:
        state_dir = argv[1]
        pid_file = os.path.join(state_dir, "pid")
        if os.path.exists(pid_file):
            open(os.path.join(state_dir, "stop"), "w").close()
            pid = int(open(pid_file).read())
            for _attempt in range(120):
                try:
                    os.kill(pid, 0)
                except OSError:
                    break
                time.sleep(0.5)
            else:
                os.kill(pid, signal.SIGTERM)
        subprocess.run(["rm", "-rf", "--", state_dir], check=False)
        return 0
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
