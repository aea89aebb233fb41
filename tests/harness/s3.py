"""What every S3 test server offers: endpoint, credentials, a boto3 client, fresh buckets."""

import uuid

import boto3
from botocore.config import Config

from ._process import Service


class S3Server(Service):
    """An S3 endpoint on loopback. ``name`` is ``ceph`` or ``seaweedfs``."""

    name = "s3"
    region = "us-east-1"
    access_key = "testaccess"
    secret_key = "testsecret"
    endpoint_url = None
    _s3 = None

    def client(self, service="s3", max_attempts=5):
        """A boto3 client (path-style addressing, SigV4, standard retries)."""
        config = Config(signature_version="s3v4", s3={"addressing_style": "path"},
                        retries={"mode": "standard", "max_attempts": max_attempts})
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key, config=config)

    def make_bucket(self, prefix="t"):
        """Create a bucket with a unique name starting with ``prefix``; return its name."""
        bucket = "%s-%s" % (prefix, uuid.uuid4().hex[:12])
        self._s3 = self._s3 or self.client()
        self._s3.create_bucket(Bucket=bucket)
        return bucket

    def module_args(self):
        """The connection options of our S3 modules."""
        return {"endpoint_url": self.endpoint_url, "access_key": self.access_key,
                "secret_key": self.secret_key, "region": self.region}

    def __repr__(self):
        return "<%s %s>" % (self.name, self.endpoint_url)
