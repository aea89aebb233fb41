"""Hosts and services of the full-stack scenario."""

import json
import os

import boto3
import pytest
import testinfra


def _host(request, name):
    return testinfra.get_host("ansible://" + name, ansible_inventory=request.config.option.ansible_inventory)


@pytest.fixture(scope="module")
def stratum0(request):
    return _host(request, "fs-s0")


@pytest.fixture(scope="module")
def publisher(request):
    return _host(request, "fs-pub")


@pytest.fixture(scope="module")
def stratum1(request):
    return _host(request, "fs-s1")


@pytest.fixture(scope="module")
def squid(request):
    return _host(request, "fs-squid")


@pytest.fixture(scope="module")
def client(request):
    return _host(request, "fs-client")


@pytest.fixture(scope="module")
def s3():
    """boto3 client of the harness's Ceph RGW (the lab's source bucket), from this machine."""
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "services", "ceph", "service.json")
    with open(path) as handle:
        rgw = json.load(handle)
    return boto3.client("s3", endpoint_url=rgw["local"], region_name=rgw["region"],
                        aws_access_key_id=rgw["access_key"], aws_secret_access_key=rgw["secret_key"])
