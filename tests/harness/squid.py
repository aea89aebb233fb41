"""squid (Debian) as a forward proxy: memory cache only, foreground (-N), ACLs from arguments."""

import ipaddress
import os
import pwd

from ._process import LOOPBACK, Service, find_binary, free_port, run, wait_until

CONFIG = """\
http_port {host}:{port}
visible_hostname harness-squid
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
access_log stdio:{dir}/access.log squid
coredump_dir {dir}
cache_effective_user {user}
cache_mem 64 MB
maximum_object_size_in_memory 16 MB
shutdown_lifetime 1 seconds
pinger_enable off
# squid's DNS client sockets: keep them on loopback too (names then resolve from /etc/hosts only)
udp_incoming_address {host}
udp_outgoing_address {host}
acl allowed_src src {src}
{destination_rules}
http_access deny all
"""


def _is_address(entry):
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def destination_rules(allowed_dst):
    """ACLs and ``http_access allow`` lines: ``dst`` for addresses/networks, ``dstdomain`` for names."""
    acls = {"allowed_dst_ip dst": [e for e in allowed_dst if _is_address(e)],
            "allowed_dst_name dstdomain": [e for e in allowed_dst if not _is_address(e)]}
    lines = []
    for acl, entries in acls.items():
        if entries:
            lines += ["acl %s %s" % (acl, " ".join(entries)), "http_access allow allowed_src " + acl.split()[0]]
    return "\n".join(lines)


class Squid(Service):
    """``.url`` (the proxy URL), ``.access_log()`` (list of lines of access.log)."""

    kind = "squid"
    user = "proxy"

    def __init__(self, allowed_dst=("127.0.0.1",), allowed_src=("127.0.0.0/8",)):
        self.squid = find_binary("squid", debian=True)
        super().__init__()
        self.port = free_port()
        self.url = "http://%s:%d" % (LOOPBACK, self.port)
        self.allowed_dst, self.allowed_src = tuple(allowed_dst), tuple(allowed_src)

    def write_config(self):
        text = CONFIG.format(host=LOOPBACK, port=self.port, dir=self.dir, user=self.user,
                             src=" ".join(self.allowed_src), destination_rules=destination_rules(self.allowed_dst))
        with open(self.path("squid.conf"), "w") as handle:
            handle.write(text)
        account = pwd.getpwnam(self.user)
        os.chown(self.dir, account.pw_uid, account.pw_gid)  # squid writes logs after dropping to proxy

    def start(self):
        self.write_config()
        config = self.path("squid.conf")
        run([self.squid, "-k", "parse", "-f", config])
        process = self.daemon("squid", [self.squid, "-N", "-f", config], cwd=self.dir)
        # wait on the listening socket: a TCP probe would leave an error line in access.log
        process.wait_listening(self.port, timeout=30)
        return self

    def access_log(self, wait_for=None, timeout=10):
        """The lines of access.log. squid logs a request after answering it: with ``wait_for``
        (a string), first wait until a line contains it."""
        if wait_for is not None:
            wait_until(lambda: any(wait_for in line for line in self._read_log()), timeout,
                       "for %r in squid's access.log" % wait_for)
        return self._read_log()

    def _read_log(self):
        try:
            with open(self.path("access.log")) as log:
                return log.read().splitlines()
        except FileNotFoundError:
            return []
