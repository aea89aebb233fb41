# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The S3 configuration file options of the repository and replica modules.
    DOCUMENTATION = r"""
options:
  s3_config:
    description:
      - S3 settings of the storage, written to O(s3_config_path) with mode 0600, owned by O(owner).
        Required with O(storage=s3).
      - Values are compared with the file on every run; a change rewrites the file (secrets are
        shown as C(********) in diff mode and never returned).
    type: dict
    suboptions:
      access_key:
        description: S3 access key id (C(CVMFS_S3_ACCESS_KEY)).
        type: str
        required: true
      bucket:
        description: Bucket name (C(CVMFS_S3_BUCKET)); it must exist and be publicly readable.
        type: str
        required: true
      dns_buckets:
        description:
          - Virtual-host style bucket URLs (C(CVMFS_S3_DNS_BUCKETS)); V(false) for path style
            (usual with Ceph RGW and SeaweedFS). Unset leaves the cvmfs default (V(true)).
        type: bool
      flavor:
        description: Request signing flavour (C(CVMFS_S3_FLAVOR)).
        type: str
        choices: [awsv2, awsv4, azure]
      host:
        description: S3 endpoint host name only, without V(http://) or a path (C(CVMFS_S3_HOST)).
        type: str
        required: true
      max_parallel_connections:
        description: Parallel upload connections (C(CVMFS_S3_MAX_NUMBER_OF_PARALLEL_CONNECTIONS), cvmfs default 16).
        type: int
      port:
        description: Endpoint port (C(CVMFS_S3_PORT)); unset means the scheme's default.
        type: int
      region:
        description: Region; when set cvmfs signs requests with AWS SigV4 (C(CVMFS_S3_REGION)).
        type: str
      secret_key:
        description: S3 secret key (C(CVMFS_S3_SECRET_KEY)). Never logged or returned.
        type: str
        required: true
      use_https:
        description: Talk HTTPS to the endpoint (C(CVMFS_S3_USE_HTTPS)).
        type: bool
  s3_config_path:
    description:
      - Where to write the S3 configuration file. Default C(/etc/cvmfs/s3/<name>.conf).
      - With O(state=absent) and O(preserve_data=false) this file is removed too.
    type: path
"""
