# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the modules that talk to an S3 endpoint (s3_sync, bucket_notification) share.

Internal to sharedsw.cvmfs; may change in any release. The Ansible side only: :data:`ARGSPEC`
(the connection options, documented by doc_fragments/_s3.py, with their environment
fallbacks), the option rules that go with it, the boto3 import guard, and
:func:`connection_options`. Imports Ansible; nothing that runs on hosts (the sync engine, the
command line) may import this file.

It must not import the engine's run (``_s3_sync``, ``_s3_fetch``, ``_s3_local``) or the host
programs: the modules import the engine themselves.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._s3_connect import ConnectionOptions

try:
    import boto3  # noqa: F401  pylint: disable=unused-import
    import botocore  # noqa: F401  pylint: disable=unused-import
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMP_ERR = traceback.format_exc()
else:
    HAS_BOTO3 = True
    BOTO3_IMP_ERR = None

ARGSPEC = dict(
    access_key=dict(type="str", aliases=["aws_access_key_id"], no_log=False,
                    fallback=(env_fallback, ["AWS_ACCESS_KEY_ID"])),
    ca_bundle=dict(type="path"),
    endpoint_url=dict(type="str", fallback=(env_fallback, ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"])),
    profile=dict(type="str", fallback=(env_fallback, ["AWS_PROFILE"])),
    region=dict(type="str", fallback=(env_fallback, ["AWS_REGION", "AWS_DEFAULT_REGION"])),
    secret_key=dict(type="str", aliases=["aws_secret_access_key"], no_log=True,
                    fallback=(env_fallback, ["AWS_SECRET_ACCESS_KEY"])),
    session_token=dict(type="str", no_log=True, fallback=(env_fallback, ["AWS_SESSION_TOKEN"])),
    validate_certs=dict(type="bool", default=True),
)
REQUIRED_TOGETHER = [("access_key", "secret_key")]
MUTUALLY_EXCLUSIVE = [("profile", "access_key")]


def require_boto3(module):
    """Fail ``module`` (an AnsibleModule) when boto3 or botocore cannot be imported."""
    if not HAS_BOTO3:
        module.fail_json(msg=missing_required_lib("boto3"), exception=BOTO3_IMP_ERR)


def connection_options(params, **more):
    """:class:`ConnectionOptions` from a module's :data:`ARGSPEC` parameters (``more``: the
    module's own connection settings, e.g. ``addressing_style``)."""
    return ConnectionOptions(
        endpoint_url=params["endpoint_url"], region=params["region"], access_key=params["access_key"],
        secret_key=params["secret_key"], session_token=params["session_token"], profile=params["profile"],
        validate_certs=params["validate_certs"], ca_bundle=params["ca_bundle"], **more)
