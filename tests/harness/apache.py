"""apache2 (Debian) with a standalone config: serves published directories with autoindex."""

import os

from ._process import LOOPBACK, Service, find_binary, free_port, run

MODULES = "/usr/lib/apache2/modules"
# log_config and unixd are built into Debian's apache2 and must not be loaded again
LOAD = ("mpm_event", "authz_core", "mime", "dir", "autoindex")

CONFIG = """\
ServerRoot "{dir}"
ServerName {host}
Listen {host}:{port}
PidFile "{dir}/httpd.pid"
DefaultRuntimeDir "{dir}"
Mutex file:{dir} default
ErrorLog "{dir}/error.log"
LogFormat "%h %l %u %t \\"%r\\" %>s %b" common
CustomLog "{dir}/access.log" common
User {user}
Group {user}
{modules}
TypesConfig /etc/mime.types
DocumentRoot "{dir}/www"
<Directory />
    Options Indexes FollowSymLinks
    AllowOverride None
    Require all granted
</Directory>
"""


def make_world_readable(directory):
    """Let apache's unprivileged user reach ``directory``: o+x on its parents, o+rX inside."""
    directory = os.path.realpath(directory)
    parent = os.path.dirname(directory)
    while parent != "/":
        os.chmod(parent, os.stat(parent).st_mode | 0o001)
        parent = os.path.dirname(parent)
    for root, dirs, files in os.walk(directory):
        os.chmod(root, os.stat(root).st_mode | 0o005)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o004)


class Apache(Service):
    """``.url``; ``.publish(name, directory)`` serves ``directory`` at ``<url>/<name>/``."""

    kind = "apache"
    user = "www-data"

    def __init__(self):
        self.apache2 = find_binary("apache2", debian=True)
        super().__init__()
        self.port = free_port()
        self.url = "http://%s:%d" % (LOOPBACK, self.port)
        self.docroot = self.path("www")

    def write_config(self):
        os.makedirs(self.docroot, mode=0o755, exist_ok=True)
        modules = "\n".join("LoadModule %s_module %s/mod_%s.so" % (m, MODULES, m) for m in LOAD)
        with open(self.path("httpd.conf"), "w") as handle:
            handle.write(CONFIG.format(dir=self.dir, host=LOOPBACK, port=self.port, user=self.user, modules=modules))

    def start(self):
        self.write_config()
        config = self.path("httpd.conf")
        run([self.apache2, "-t", "-f", config])
        process = self.daemon("apache2", [self.apache2, "-f", config, "-DFOREGROUND"], cwd=self.dir)
        process.wait_listening(self.port, timeout=30)
        return self

    def publish(self, name, directory):
        """Serve ``directory`` (made world-readable) at ``<url>/<name>/``; return that URL."""
        make_world_readable(directory)
        link = os.path.join(self.docroot, name)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.path.realpath(directory), link)
        return "%s/%s/" % (self.url, name)
