# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options of every module that talks to an S3 endpoint (s3_sync, bucket_notification).

Internal to sharedsw.cvmfs; may change in any release. Matches ARGSPEC in module_utils/_s3_module.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r"""
options:
  access_key:
    description:
      - S3 access key. With O(secret_key). Without both, credentials come from O(profile) or
        the usual boto3 chain (environment, config files, instance role).
      - Default from the environment variable C(AWS_ACCESS_KEY_ID).
    type: str
    aliases: [aws_access_key_id]
  ca_bundle:
    description: CA certificates (PEM file) to verify the S3 endpoint with.
    type: path
  endpoint_url:
    description:
      - S3 endpoint URL, for example C(https://rgw.example.org). Default is AWS.
      - Default from the environment variable C(AWS_ENDPOINT_URL_S3) or C(AWS_ENDPOINT_URL).
    type: str
  profile:
    description:
      - Profile from the AWS config files to take credentials and region from.
      - Default from the environment variable C(AWS_PROFILE).
    type: str
  region:
    description:
      - Signing region (with Ceph RGW its zonegroup name, often V(default)). Default is the
        profile's region or C(us-east-1).
      - Default from the environment variable C(AWS_REGION) or C(AWS_DEFAULT_REGION).
    type: str
  secret_key:
    description:
      - S3 secret key, with O(access_key).
      - Default from the environment variable C(AWS_SECRET_ACCESS_KEY).
    type: str
    aliases: [aws_secret_access_key]
  session_token:
    description:
      - Session token for temporary credentials.
      - Default from the environment variable C(AWS_SESSION_TOKEN).
    type: str
  validate_certs:
    description: Verify the S3 endpoint's TLS certificate.
    type: bool
    default: true
"""

    # the action group of meta/runtime.yml whose members share these options
    ACTION_GROUP = r"""
options: {}
attributes:
  action_group:
    description: Use C(group/sharedsw.cvmfs.s3) in C(module_defaults) to set the S3 connection (endpoint,
      credentials, TLS) once per play for the modules that talk to one S3 service.
    support: full
    membership:
      - sharedsw.cvmfs.s3
  platform:
    platforms: posix
"""
