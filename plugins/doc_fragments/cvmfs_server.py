# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # What the modules that drive cvmfs_server (repository, transaction, replica) share.
    DOCUMENTATION = r"""
options: {}
notes:
  - The module runs the C(cvmfs_server) found in E(PATH) or in C(/usr/bin), C(/usr/sbin), C(/bin),
    C(/sbin) or C(/usr/local/bin), and reads the state files under C(/etc/cvmfs), C(/var/spool/cvmfs)
    and C(/srv/cvmfs), where the CernVM-FS server package keeps them.
  - The module runs C(cvmfs_server) with an argument list (never a shell), C(LC_ALL=C), standard
    input from C(/dev/null) and working directory C(/), and always passes the flags that stop
    C(cvmfs_server) from prompting (C(-f), C(-o)).
  - In check mode no sub-command that changes anything is run; the module reads the state files
    C(cvmfs_server) itself uses and reports what it would do.
  - At verbosity 4 (C(-vvvv)) the result has C(run_info), the full record of every command run.
"""

    # the action group of meta/runtime.yml whose members share these options
    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/sharedsw.cvmfs.cvmfs_server) in C(module_defaults) to set O(name) once for
      the modules that work on one repository of this host.
    support: full
    membership:
      - sharedsw.cvmfs.cvmfs_server
  platform:
    platforms: posix
"""
