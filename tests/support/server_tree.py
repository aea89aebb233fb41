"""Scratch trees laid out like ``cvmfs_server`` leaves them (cvmfs-facts §2.1, §2.2): the
``server.conf`` of a repository, its ``client.conf`` and spool directory, as plain files.

For tests that read state files; nothing here runs ``cvmfs_server`` or a double of it.
"""

import os


def write(path, text, mode="w"):
    """Write ``text`` to ``path``, creating the directories above it."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), mode) as handle:
        handle.write(text)


def stratum0_conf(name="sw.example.org", upstream=None, **settings):
    """``server.conf`` of the stratum-0 ``name`` as ``mkfs`` writes it (local storage unless
    ``upstream`` says otherwise), followed by ``settings`` (``KEY=value`` lines, in order)."""
    lines = ["CVMFS_CREATOR_VERSION=143", "CVMFS_REPOSITORY_NAME=" + name, "CVMFS_REPOSITORY_TYPE=stratum0",
             "CVMFS_USER=cvmfs", "CVMFS_UNION_DIR=/cvmfs/" + name, "CVMFS_SPOOL_DIR=/var/spool/cvmfs/" + name,
             "CVMFS_STRATUM0=http://localhost/cvmfs/" + name,
             "CVMFS_UPSTREAM_STORAGE=" + (upstream or "local,/srv/cvmfs/%s/data/txn,/srv/cvmfs/%s" % (name, name))]
    lines += ["%s=%s" % item for item in settings.items()]
    return "\n".join(lines) + "\n"


def make_stratum0(etc_dir, spool_dir, name="sw.example.org", conf=None, in_transaction=False):
    """A stratum-0 ``name`` under ``etc_dir`` and ``spool_dir``: server.conf (``conf`` or the default
    :func:`stratum0_conf`), client.conf and the spool directory, with the transaction lock if asked."""
    write(os.path.join(str(etc_dir), "repositories.d", name, "server.conf"), conf or stratum0_conf(name))
    write(os.path.join(str(etc_dir), "repositories.d", name, "client.conf"),
          "CVMFS_SERVER_URL=http://localhost/cvmfs/%s\n" % name)
    os.makedirs(os.path.join(str(spool_dir), name), exist_ok=True)
    if in_transaction:
        write(os.path.join(str(spool_dir), name, "in_transaction.lock"), "")
