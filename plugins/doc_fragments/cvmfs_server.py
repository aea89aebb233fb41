# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Options shared by the modules that drive cvmfs_server (repository, transaction, replica).
    DOCUMENTATION = r"""
options:
  cvmfs_server_path:
    description:
      - Advanced. The C(cvmfs_server) program to run.
      - A bare name is searched in E(PATH) and the usual C(bin)/C(sbin) directories; a path with a
        V(/) must be an executable file.
    type: str
    default: cvmfs_server
  etc_dir:
    description:
      - Advanced. The configuration root C(cvmfs_server) uses (C(repositories.d/), C(keys/)).
      - The module reads the repository state from here. Change it only together with a
        O(cvmfs_server_path) that works under the same root, for example a test double.
    type: path
    default: /etc/cvmfs
  spool_dir:
    description:
      - Advanced. The spool root of C(cvmfs_server) (C(<spool_dir>/<name>/in_transaction.lock),
        C(is_publishing.lock), C(scratch/current)).
      - Change it only together with O(cvmfs_server_path), see O(etc_dir).
    type: path
    default: /var/spool/cvmfs
  storage_dir:
    description:
      - Advanced. The root of local repository storage (C(<storage_dir>/<name>/.cvmfspublished)).
      - Change it only together with O(cvmfs_server_path), see O(etc_dir).
    type: path
    default: /srv/cvmfs
notes:
  - The module runs C(cvmfs_server) with an argument list (never a shell), C(LC_ALL=C), standard
    input from C(/dev/null) and working directory C(/), and always passes the flags that stop
    C(cvmfs_server) from prompting (C(-f), C(-o)).
  - In check mode no sub-command that changes anything is run; the module reads the state files
    C(cvmfs_server) itself uses and reports what it would do.
  - At verbosity 4 (C(-vvvv)) the result has C(run_info), the full record of every command run.
"""
