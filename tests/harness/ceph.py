"""Ceph RGW (Debian radosgw, ceph-mon, ceph-osd) as a one-host mini cluster on loopback.

One mon, one memstore OSD and one radosgw, auth none, everything under one temporary
directory. The only S3 server of the harness with RGW's SNS topics and bucket notifications.
"""

import json
import os
import uuid

from ._process import LOOPBACK, find_binary, free_ports, http_answers, run, tail
from .s3 import S3Server

OSD_PORT_RANGE = 16  # an OSD binds 8 ports (public, cluster, 2 heartbeats; msgr v1 and v2 each)

CONFIG = """\
[global]
fsid = {fsid}
mon host = [v2:{host}:{mon_v2},v1:{host}:{mon_v1}]
public addr = {host}
cluster addr = {host}
ms bind port min = {osd_min}
ms bind port max = {osd_max}
auth cluster required = none
auth service required = none
auth client required = none
# auth "none" cannot give the default "secure" mode: allow crc everywhere
ms mon client mode = crc secure
ms mon cluster mode = crc secure
ms mon service mode = crc secure
ms client mode = crc secure
ms cluster mode = crc secure
ms service mode = crc secure
run dir = {dir}/run
admin socket = {dir}/run/$name.asok
pid file = {dir}/run/$name.pid
log file = {dir}/log/$name.log
mon data = {dir}/mon/$cluster-$id
osd data = {dir}/osd/$cluster-$id
keyring = /dev/null
osd objectstore = memstore
memstore device bytes = 2147483648
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
mon data avail warn = 1
mon data avail crit = 0
# the mon batches map changes for 1 s by default: every pool RGW creates would cost 1-2 s
paxos propose interval = 0.01

[client.rgw.a]
rgw frontends = beast endpoint={host}:{rgw_port} tcp_nodelay=1
rgw data = {dir}/rgw
"""


class CephRGW(S3Server):
    """The Ceph RGW S3Server, plus ``.sns_client()`` and ``.admin(*args)`` (radosgw-admin)."""

    kind = name = "ceph"
    region = "default"
    user = "tester"

    def __init__(self):
        self.bin = {name: find_binary(name, debian=True)
                    for name in ("monmaptool", "ceph-mon", "ceph-osd", "ceph", "radosgw", "radosgw-admin")}
        super().__init__()
        # the OSD binds any port of its range: the others must lie outside it
        self.osd_ports = free_ports(OSD_PORT_RANGE, contiguous=True)
        self.mon_v2, self.mon_v1, self.rgw_port = free_ports(3, avoid=self.osd_ports)
        self.endpoint_url = "http://%s:%d" % (LOOPBACK, self.rgw_port)
        self.conf = self.path("ceph.conf")
        self.rgw = None

    def start(self):
        self.write_config()
        self.start_mon()
        self.start_osd()
        self.start_rgw()
        self.admin("user", "create", "--uid=" + self.user, "--display-name=harness",
                   "--access-key=" + self.access_key, "--secret-key=" + self.secret_key)
        self.warm_up()
        return self

    def write_config(self):
        for sub in ("run", "log", "mon", "osd", "rgw"):
            os.makedirs(self.path(sub), exist_ok=True)
        text = CONFIG.format(fsid=uuid.uuid4(), host=LOOPBACK, mon_v2=self.mon_v2, mon_v1=self.mon_v1,
                             osd_min=self.osd_ports[0], osd_max=self.osd_ports[-1], rgw_port=self.rgw_port, dir=self.dir)
        with open(self.conf, "w") as handle:
            handle.write(text)

    def ceph(self, *args):
        """Run the ``ceph`` CLI against this cluster; return its output."""
        return run([self.bin["ceph"], "-c", self.conf, "--connect-timeout", "30"] + list(args))

    def start_mon(self):
        monmap = self.path("monmap")
        fsid = self._config_value("fsid")
        run([self.bin["monmaptool"], "--create", "--fsid", fsid, "--addv", "a",
             "[v2:%s:%d,v1:%s:%d]" % (LOOPBACK, self.mon_v2, LOOPBACK, self.mon_v1), monmap])
        run([self.bin["ceph-mon"], "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap])
        mon = self.daemon("ceph-mon", [self.bin["ceph-mon"], "-c", self.conf, "-i", "a", "-f"])
        mon.wait_listening(self.mon_v2, timeout=30)

    def start_osd(self):
        osd_uuid = str(uuid.uuid4())
        osd_id = self.ceph("osd", "new", osd_uuid).strip()
        os.makedirs(self.path("osd", "ceph-" + osd_id))
        run([self.bin["ceph-osd"], "-c", self.conf, "-i", osd_id, "--mkfs", "--osd-uuid", osd_uuid])
        self.daemon("ceph-osd", [self.bin["ceph-osd"], "-c", self.conf, "-i", osd_id, "-f"])

    def start_rgw(self):
        self.rgw = self.daemon("radosgw", [self.bin["radosgw"], "-c", self.conf, "-n", "client.rgw.a", "-f"])
        self.rgw.wait_for(lambda: http_answers(self.endpoint_url), timeout=120, what="to answer S3 on " + self.endpoint_url,
                          logs=[self.rgw_log, self.path("log", "osd.0.log")])

    @property
    def rgw_log(self):
        return self.path("log", "client.rgw.a.log")

    def revive_rgw(self):
        """If radosgw has died (Pacific aborts on some requests), start it again on the same port
        and data, and return the crash report from its log; else return None."""
        if self.rgw is None or self.rgw.running():
            return None
        with open(self.rgw_log, errors="replace") as log:
            text = log.read()
        start = text.rfind("*** Caught signal")
        crash = text[start:text.find("NOTE: a copy", start)] if start >= 0 else tail(self.rgw_log)
        self.daemons.remove(self.rgw)
        self.start_rgw()
        return crash

    def warm_up(self):
        """The first bucket and put create RGW's index and data pools (seconds): do it now."""
        s3 = self.client()
        bucket = self.make_bucket("warm-up")
        s3.put_object(Bucket=bucket, Key="warm-up", Body=b"")
        s3.delete_object(Bucket=bucket, Key="warm-up")
        s3.delete_bucket(Bucket=bucket)

    def _config_value(self, key):
        with open(self.conf) as handle:
            for line in handle:
                if line.startswith(key + " = "):
                    return line.split(" = ", 1)[1].strip()
        raise KeyError(key)

    def admin(self, *args):
        """Run ``radosgw-admin`` against this cluster; return its JSON output parsed (or the text)."""
        output = run([self.bin["radosgw-admin"], "-c", self.conf, "-n", "client.admin"] + list(args))
        try:
            return json.loads(output)
        except ValueError:
            return output

    def sns_client(self):
        """A boto3 SNS client for RGW's topic API (push-endpoint amqp://..., amqp-exchange, ...)."""
        return self.client("sns")
