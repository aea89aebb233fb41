"""Hosts and services of the full-stack scenario."""

import json
import os
import sys

import boto3
import pytest

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..")))  # for tests.support

from tests.support.testinfra_hosts import lab_host  # noqa: E402  pylint: disable=wrong-import-position

stratum0 = lab_host("fs-s0")
publisher = lab_host("fs-pub")
stratum1 = lab_host("fs-s1")
squid = lab_host("fs-squid")
client = lab_host("fs-client")


@pytest.fixture(scope="module")
def s3():
    """boto3 client of the harness's Ceph RGW (the lab's source bucket), from this machine."""
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "services", "ceph", "service.json")
    with open(path) as handle:
        rgw = json.load(handle)
    return boto3.client("s3", endpoint_url=rgw["local"], region_name=rgw["region"],
                        aws_access_key_id=rgw["access_key"], aws_secret_access_key=rgw["secret_key"])
