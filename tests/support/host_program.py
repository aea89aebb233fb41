"""The host-program archive, built for tests exactly as the action sharedsw.cvmfs.host_program builds it
for the roles (same function, same source, same version): tests run the programs from it the way
the units do, ``PYTHONPATH=<archive> python3 -m sharedsw_cvmfs.<program>``."""

import os

from ansible_collections.sharedsw.cvmfs.plugins.plugin_utils import _host_program


def build_host_program(directory):
    """Write the archive into ``directory``; returns its path (the units' PYTHONPATH)."""
    path = os.path.join(str(directory), _host_program.ARCHIVE_NAME)
    with open(path, "wb") as handle:
        handle.write(_host_program.build_archive(_host_program.module_utils_dir(), _host_program.collection_version()))
    return path
