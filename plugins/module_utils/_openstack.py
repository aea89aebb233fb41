# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OpenStack client of the collection: connection options, connection, error translation, retry.

Internal to sharedsw.cvmfs; may change in any release. No Ansible import: the same code serves
modules (options from ``module.params``), the ``openstack_nodes`` inventory plugin and tests.
What a provisioned server means to the service (node types, metadata, addresses, ports) is in
``_nodes.py``, which does not need openstacksdk, so filters load fast.

Must not import Ansible (modules and the inventory plugin share it) nor the host programs
(``_publish_*``, ``_event*``, ``_snapshot_listener``); openstacksdk is imported here only,
behind a guard.

Public surface:

* :data:`ARGSPEC` -- connection options of every module that talks to OpenStack.
* :func:`connect` -- an ``openstack.connection.Connection`` from a cloud name or a cloud dict.
* :func:`sdk_errors` -- context manager turning SDK / keystoneauth errors into :class:`CvmfsError`.
* :class:`OpenStackRetry` -- retry on connection failures and HTTP 500/502/503/504.
* :func:`server_record` -- the plain dict of a Nova server that the inventory keeps (and caches).

Environment policy (decided once, here, the same as the ``openstack`` CLI and ``openstack.cloud``):
when no cloud is given, openstacksdk reads ``OS_CLOUD`` (a cloud of ``clouds.yaml``, found through
``OS_CLIENT_CONFIG_FILE`` or the standard locations) or, failing that, the ``OS_AUTH_URL`` family
of variables. If none of these names a cloud, we stop with an error instead of letting the SDK try
an unauthenticated default.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import os
import traceback

try:
    import openstack
    import openstack.config
    import openstack.connection
    import openstack.exceptions
    from keystoneauth1 import exceptions as ksa_exceptions
except ImportError:
    HAS_OPENSTACKSDK = False
    OPENSTACKSDK_IMP_ERR = traceback.format_exc()
else:
    HAS_OPENSTACKSDK = True
    OPENSTACKSDK_IMP_ERR = None

from ._common import CvmfsError, Retry

ARGSPEC = dict(
    api_timeout=dict(type="int", default=600),
    cloud=dict(type="raw"),
    region_name=dict(type="str"),
)

APP_NAME = "sharedsw.cvmfs"


def _cloud_from_environment(environ):
    return bool(environ.get("OS_CLOUD") or environ.get("OS_AUTH_URL"))


def connect(cloud=None, region_name=None, api_timeout=None, config_files=None, environ=None):
    """Open a connection to the cloud ``cloud`` (a ``clouds.yaml`` name or a full cloud dict).

    ``config_files`` (list of paths) are searched before the standard ``clouds.yaml`` locations.
    Nothing is sent to the cloud until the first call.
    """
    if not HAS_OPENSTACKSDK:
        raise CvmfsError("the Python library openstacksdk is needed to talk to OpenStack; install openstacksdk>=1.0")
    environ = os.environ if environ is None else environ
    if cloud in (None, "") and not _cloud_from_environment(environ):
        raise CvmfsError(
            "no OpenStack cloud given: set the option cloud to a cloud of clouds.yaml (or a cloud dict), "
            "or set OS_CLOUD, or the OS_AUTH_URL family of variables")
    extra = {}
    if region_name:
        extra["region_name"] = region_name
    if api_timeout:
        extra["api_timeout"] = api_timeout
    with sdk_errors("read the OpenStack cloud configuration"):
        if isinstance(cloud, dict):
            if "cloud" in cloud:
                raise CvmfsError("the cloud dict must describe a cloud (auth, region_name, ...), "
                                 "not name one: pass the name as a string instead")
            settings = dict(cloud)
            settings.update(extra)
            config = openstack.config.OpenStackConfig(
                config_files=config_files or [], load_envvars=False).get_one(**settings)
        elif cloud is None or isinstance(cloud, str):
            loader = openstack.config.OpenStackConfig(
                config_files=(list(config_files or []) + openstack.config.loader.CONFIG_FILES))
            config = loader.get_one(cloud=cloud or None, **extra)
        else:
            raise CvmfsError("cloud must be the name of a cloud in clouds.yaml or a dict, not %s"
                             % type(cloud).__name__)
        return openstack.connection.Connection(config=config, app_name=APP_NAME, app_version="0.1.0")


class OpenStackRetry(Retry):
    """Retry what a second attempt can fix: dropped connections and HTTP 500, 502, 503, 504."""

    @staticmethod
    def is_transient(error):
        if not HAS_OPENSTACKSDK:
            return False
        if isinstance(error, (ksa_exceptions.ConnectFailure, ksa_exceptions.ConnectTimeout)):
            return True
        if isinstance(error, openstack.exceptions.HttpException):
            return error.status_code in (500, 502, 503, 504)
        return False


def _describe(error):
    status = getattr(error, "status_code", None)
    details = getattr(error, "details", None) or str(error)
    return ("HTTP %s: %s" % (status, details)) if status else details


@contextlib.contextmanager
def sdk_errors(what):
    """Translate openstacksdk and keystoneauth errors raised inside into ``CvmfsError("Failed to <what>")``."""
    try:
        yield
    except CvmfsError:
        raise
    except Exception as error:  # pylint: disable=broad-except
        if not HAS_OPENSTACKSDK:
            raise
        hint = ""
        if isinstance(error, (ksa_exceptions.Unauthorized, ksa_exceptions.AuthorizationFailure)):
            hint = "; check the credentials of the cloud in clouds.yaml"
        elif isinstance(error, ksa_exceptions.ConnectFailure):
            hint = "; check the auth_url of the cloud and that the API endpoints are reachable from here"
        elif isinstance(error, openstack.exceptions.ForbiddenException):
            hint = "; the cloud's policy does not allow this to the user of the cloud"
        elif isinstance(error, openstack.exceptions.ConfigException):
            hint = "; check clouds.yaml (OS_CLIENT_CONFIG_FILE) and the cloud name"
        if isinstance(error, (openstack.exceptions.SDKException, ksa_exceptions.ClientException)):
            raise CvmfsError("Failed to %s: %s%s" % (what, _describe(error), hint), exception=error)
        raise


def server_record(server):
    """A plain, JSON-serialisable dict of what the inventory needs from a Nova server.

    ``server`` is an ``openstack.compute.v2.server.Server`` or a dict of the Nova API.
    """
    get = server.get if isinstance(server, dict) else (lambda key, default=None: getattr(server, key, default))
    flavor = get("flavor") or {}
    image = get("image") or {}
    if not isinstance(flavor, dict):
        flavor = dict(flavor)
    if not isinstance(image, dict):
        image = dict(image)
    return {
        "id": get("id"),
        "name": get("name"),
        "status": get("status"),
        "addresses": dict(get("addresses") or {}),
        "metadata": dict(get("metadata") or {}),
        "flavor": flavor.get("original_name") or flavor.get("name") or flavor.get("id"),
        "image_id": image.get("id"),
        "availability_zone": get("availability_zone") or get("OS-EXT-AZ:availability_zone"),
        "key_name": get("key_name"),
    }
