#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: host_program
short_description: Install the collection's host programs as one Python zip archive
version_added: 0.1.0
author:
  - sharedsw.cvmfs contributors (@sharedsw)
description:
  - Builds, on the controller, the zip archive of the programs the roles run on hosts under systemd
    (the publish job, the notification consumer, the S3 sync command, the whitelist and
    replication-lag checks) and copies it to O(dest).
  - The programs are the collection's C(module_utils) files that end in an
    C(if __name__ == "__main__":) block; the archive holds them and every C(module_utils) file they
    import, directly or not, as the Python package C(sharedsw_cvmfs), found by reading their
    imports. It holds code only, and the collection's version.
  - "The archive is built the same way every time (sorted entries, fixed timestamps), so a second
    run reports no change. On the host it runs with the distribution's Python:
    C(PYTHONPATH=<dest> python3 -m sharedsw_cvmfs.<program>), or C(python3 <dest> <program>)."
  - Fails, naming the file and line, when a program's import cannot work on a host (an absolute
    import of the collection, or of a C(module_utils) file that does not exist).
options:
  dest:
    description: Path of the archive on the host; its directory must exist.
    type: path
    required: true
  owner:
    description: Owner of the archive.
    type: str
    default: root
  group:
    description: Group of the archive.
    type: str
    default: root
  mode:
    description: Permissions of the archive.
    type: raw
    default: "0644"
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
attributes:
  action:
    support: full
    details: Builds the archive on the controller, then copies it with M(ansible.builtin.copy).
  async:
    support: none
  bypass_host_loop:
    support: none
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The archive does not contain the Python libraries the programs use (boto3, pika); the roles
    install them as distribution packages.
"""

EXAMPLES = r"""
- name: Host programs of the collection
  sharedsw.cvmfs.host_program:
    dest: /usr/local/lib/sharedsw-cvmfs/sharedsw-cvmfs.pyz

# and in a systemd unit:
#   Environment=PYTHONPATH=/usr/local/lib/sharedsw-cvmfs/sharedsw-cvmfs.pyz
#   ExecStart=/usr/bin/python3 -m sharedsw_cvmfs._whitelist_check --name %i ...
"""

RETURN = r"""
dest:
  description: Path of the archive on the host.
  returned: always
  type: str
  sample: /usr/local/lib/sharedsw-cvmfs/sharedsw-cvmfs.pyz
version:
  description: Version of the collection the archive was built from.
  returned: success
  type: str
  sample: 0.1.0
programs:
  description: The programs in the archive (module names in C(sharedsw_cvmfs)).
  returned: success
  type: list
  elements: str
  sample: [_events, _publish_job, _replica_lag, _s3_sync_cli, _whitelist_check]
modules:
  description: The C(module_utils) files in the archive.
  returned: success
  type: list
  elements: str
  sample: [_common.py, _publish_job.py]
checksum:
  description: SHA1 checksum of the archive.
  returned: success
  type: str
  sample: 6e642bb8dd5c2e027bf21dd923337cbb4214f827
"""

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(
    dest=dict(type="path", required=True),
    owner=dict(type="str", default="root"),
    group=dict(type="str", default="root"),
    mode=dict(type="raw", default="0644"),
)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.fail_json(msg="sharedsw.cvmfs.host_program runs as an action plugin on the controller; "
                         "it cannot run as a module on %s" % module.params["dest"])


if __name__ == "__main__":
    main()
