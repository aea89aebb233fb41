"""Scratch "hosts" for the role tests that run a role's task files on this machine.

A role keeps its paths in internal variables (``__<role>_<what>``); :func:`role_paths` points them
into a scratch tree. :class:`PublisherHost` is the publisher role's host: its paths, and the
TEST DOUBLE of ``cvmfs_server`` (tests/support/publish_double/cvmfs_server, the union mount
modelled as a plain directory) that the installed programs talk to instead of CernVM-FS.
:func:`unit_command` reads the command line systemd would run for a unit instance.
"""

import os
import shlex

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PUBLISH_DOUBLE = os.path.join(REPO_ROOT, "tests", "support", "publish_double", "cvmfs_server")


def role_paths(role, root, paths, create=()):
    """Extra vars ``__<role>_<key>`` = ``root/<relative path>`` for ``paths``; makes those in ``create``."""
    found = {"__%s_%s" % (role, key): str(root / value) for key, value in paths.items()}
    for key in create:
        os.makedirs(found["__%s_%s" % (role, key)], exist_ok=True)
    return found


def unit_command(unit_file, instance, **env):
    """``(argv, env)`` of a template unit's ExecStart and Environment lines, ``%i`` = ``instance``.

    ``env`` is added to the unit's environment, with this process's PATH.
    """
    environment, argv = {"PATH": os.environ["PATH"]}, None
    for line in unit_file.read_text().splitlines():
        if line.startswith("Environment="):
            environment.update(item.split("=", 1) for item in shlex.split(line[len("Environment="):]))
        if line.startswith("ExecStart="):
            argv = shlex.split(line[len("ExecStart="):].replace("%i", instance))
    environment.update(env)
    return argv, environment


class PublisherHost:
    """A publisher host under ``base``: ``root`` (the role's files), ``work`` (playbook runs) and
    ``double`` (the cvmfs_server double's tree); ``vars`` are the extra vars that point the role there."""

    PATHS = {"keys_dir": "etc/cvmfs/keys", "config_dir": "etc/sharedsw-cvmfs/publish",
             "state_root": "var/lib/sharedsw-cvmfs/publish", "systemd_dir": "etc/systemd/system",
             "program_dir": "usr/local/lib/sharedsw-cvmfs"}

    def __init__(self, base):
        self.root, self.work, self.double = base / "host", base / "work", base / "double"
        for directory in (self.root, self.work, self.double):
            directory.mkdir()
        self.vars = role_paths("publisher", self.root, self.PATHS, create=("systemd_dir",))
        self.vars.update({
            "__publisher_cvmfs_server": PUBLISH_DOUBLE,
            "__publisher_mount_dir": str(self.double / "cvmfs"),
            "__publisher_spool_dir": str(self.double / "var/spool/cvmfs"),
            "__publisher_etc_dir": str(self.double / "etc/cvmfs"),
        })

    def path(self, *parts):
        return self.root.joinpath(*parts)

    def add_repository(self, name, path=""):
        """The repository ``name`` in the double's tree, with the (empty) sub-path ``path``."""
        conf = self.double / "etc/cvmfs/repositories.d" / name
        conf.mkdir(parents=True)
        (conf / "server.conf").write_text("CVMFS_REPOSITORY_NAME=%s\n" % name)
        for top in ("cvmfs", "published"):
            self.double.joinpath(top, name, path).mkdir(parents=True)

    def unit_command(self, unit, instance):
        """What systemd would run for ``unit`` (a template in the role's systemd dir), against the double."""
        return unit_command(self.path("etc/systemd/system", unit), instance, CVMFS_DOUBLE_ROOT=str(self.double))
