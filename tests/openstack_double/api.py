"""TEST DOUBLE of the OpenStack APIs -- not a real cloud.

A small stateful HTTP server on 127.0.0.1 that answers the Keystone v3, Nova v2.1, Neutron v2.0
and Glance v2 calls the collection makes (through the real openstacksdk and the real
``openstack.cloud`` modules), with response bodies shaped after the recorded JSON of the
OpenStack API references: version discovery documents, a Keystone token with a service catalog,
servers with ``addresses`` / ``OS-EXT-IPS:type``, security groups with their rules, floating IPs,
Glance images with custom properties at the top level, ``checksum`` (md5), ``os_hash_algo`` and
``os_hash_value`` computed from the uploaded bytes while they stream in.

What it does not do: scheduling, quotas, policies (every user is an admin of its project),
microversion negotiation beyond announcing a range, or anything the tests do not call. Requests
it does not know are answered 404 and recorded in ``unknown``, and tests assert that list is empty,
so a new SDK call path shows up as a test failure rather than silently passing.

Usage::

    with OpenStackDouble() as cloud:
        cloud.clouds_yaml(path)        # a clouds.yaml naming cloud "double"
        cloud.add_image("debian-12")   # something for servers to boot
        ...                            # point openstacksdk / ansible at it
        cloud.servers                  # inspect the state
"""

import copy
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import yaml

USERNAME = "demo"
PASSWORD = "secret-password"
PROJECT_ID = "6f5c1f8e0a6b4c0e9d1b2a3c4d5e6f70"
USER_ID = "0c3b2a19d8e7f6a5b4c3d2e1f0a9b8c7"
REGION = "RegionOne"
COMPUTE_VERSION = "2.79"
NEUTRON_EXTENSIONS = ("security-group", "router", "external-net", "standard-attr-description",
                      "standard-attr-tag", "stateful-security-group")


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


class OpenStackDouble:
    """The state of one fake project, and the HTTP server answering for it."""

    def __init__(self, fail_uploads=0):
        """``fail_uploads``: that many image uploads fail with HTTP 500 (a broken store);
        ``corrupt_uploads`` (attribute): that many uploads store the data with one byte changed;
        ``report_checksum`` (attribute): False makes Glance leave out ``checksum`` (md5) as some stores do."""
        self.lock = threading.RLock()
        self.token = uuid.uuid4().hex
        self.requests = []
        self.unknown = []
        self.data_dir = tempfile.mkdtemp(prefix="openstack-double-")
        self.fail_uploads = fail_uploads
        self.corrupt_uploads = 0
        self.report_checksum = True
        self.servers = {}
        self.flavors = {}
        self.images = {}
        self.networks = {}
        self.subnets = {}
        self.ports = {}
        self.floating_ips = {}
        self.security_groups = {}
        self.keypairs = {}
        self._fixed = itertools.count(10)
        self._floating = itertools.count(10)
        self.add_flavor("m1.small", vcpus=1, ram=2048, disk=20)
        self.add_flavor("m1.medium", vcpus=2, ram=4096, disk=40)
        self.private_net = self.add_network("private", "10.0.0.0/24")
        self.public_net = self.add_network("public", "172.24.4.0/24", external=True)
        self.default_sg = self._new_security_group("default", "Default security group", default_rules=True)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # ------------------------------------------------------------------ life cycle

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def cloud_config(self):
        """A cloud dict as in clouds.yaml."""
        return {
            "auth": {"auth_url": self.url + "/identity/v3", "username": USERNAME, "password": PASSWORD,
                     "project_name": "demo", "user_domain_name": "Default", "project_domain_name": "Default"},
            "region_name": REGION,
            "identity_api_version": "3",
        }

    def clouds_yaml(self, path, name="double", password=PASSWORD):
        config = self.cloud_config()
        config["auth"]["password"] = password
        with open(path, "w", encoding="utf-8") as handle:
            yaml.safe_dump({"clouds": {name: config}}, handle)
        return path

    # ------------------------------------------------------------------ seeding

    def add_flavor(self, name, vcpus, ram, disk):
        flavor_id = str(len(self.flavors) + 1)
        self.flavors[flavor_id] = {"id": flavor_id, "name": name, "vcpus": vcpus, "ram": ram, "disk": disk,
                                   "swap": "", "OS-FLV-EXT-DATA:ephemeral": 0, "os-flavor-access:is_public": True,
                                   "rxtx_factor": 1.0, "OS-FLV-DISABLED:disabled": False, "description": None,
                                   "extra_specs": {}, "links": []}
        return flavor_id

    def add_network(self, name, cidr, external=False):
        net_id = str(uuid.uuid4())
        subnet_id = str(uuid.uuid4())
        self.networks[net_id] = {
            "id": net_id, "name": name, "status": "ACTIVE", "admin_state_up": True, "shared": False,
            "router:external": external, "subnets": [subnet_id], "tenant_id": PROJECT_ID, "project_id": PROJECT_ID,
            "mtu": 1450, "description": "", "tags": [], "is_default": False, "availability_zones": ["nova"],
            "port_security_enabled": True, "provider:network_type": "vxlan"}
        self.subnets[subnet_id] = {
            "id": subnet_id, "name": name + "-subnet", "network_id": net_id, "cidr": cidr, "ip_version": 4,
            "gateway_ip": cidr.rsplit(".", 1)[0] + ".1", "enable_dhcp": True, "tenant_id": PROJECT_ID,
            "project_id": PROJECT_ID, "allocation_pools": [], "dns_nameservers": [], "host_routes": [],
            "description": "", "tags": []}
        return net_id

    def add_image(self, name, data=b"\0" * 1024, **properties):
        image = self._new_image({"name": name, "disk_format": "qcow2", "container_format": "bare",
                                 "visibility": "public"})
        image.update(properties)
        self._store_image_data(image, [data])
        return image["id"]

    def add_server(self, name, metadata=None, floating_ip=False, status="ACTIVE"):
        """A server as Nova would list it after a boot, without going through the API."""
        image_id = next(iter(self.images), None) or self.add_image("seed")
        status_code, _headers, body = self.nova_create_server({}, {"server": {
            "name": name, "flavorRef": "1", "imageRef": image_id, "metadata": metadata or {}}})
        assert status_code == 202
        server_id = body["server"]["id"]
        self.servers[server_id]["status"] = status
        if floating_ip:
            port = next(p for p in self.ports.values() if p["device_id"] == server_id)
            self.neutron_create_floating_ip({}, {"floatingip": {"floating_network_id": self.public_net,
                                                                "port_id": port["id"]}})
        return server_id

    # ------------------------------------------------------------------ resources

    def _new_security_group(self, name, description="", default_rules=True):
        sg_id = str(uuid.uuid4())
        sg = {"id": sg_id, "name": name, "description": description or "", "tenant_id": PROJECT_ID,
              "project_id": PROJECT_ID, "stateful": True, "tags": [], "created_at": _now(), "updated_at": _now(),
              "revision_number": 1, "security_group_rules": [], "shared": False}
        self.security_groups[sg_id] = sg
        if default_rules:
            for ethertype in ("IPv4", "IPv6"):
                self._new_rule({"security_group_id": sg_id, "direction": "egress", "ethertype": ethertype})
        return sg_id

    def _new_rule(self, body):
        sg = self.security_groups.get(body.get("security_group_id"))
        if sg is None:
            raise ApiError(404, "Security group %s does not exist" % body.get("security_group_id"))
        rule = {"id": str(uuid.uuid4()), "security_group_id": sg["id"], "direction": body.get("direction", "ingress"),
                "ethertype": body.get("ethertype", "IPv4"), "protocol": body.get("protocol"),
                "port_range_min": body.get("port_range_min"), "port_range_max": body.get("port_range_max"),
                "remote_ip_prefix": body.get("remote_ip_prefix"), "remote_group_id": body.get("remote_group_id"),
                "remote_address_group_id": None, "description": body.get("description") or "",
                "tenant_id": PROJECT_ID, "project_id": PROJECT_ID, "created_at": _now(), "updated_at": _now(),
                "revision_number": 0, "normalized_cidr": body.get("remote_ip_prefix"), "belongs_to_default_sg": False}
        for other in sg["security_group_rules"]:
            keys = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix",
                    "remote_group_id")
            same = all(other[k] == rule[k] for k in keys)
            if same:
                raise ApiError(409, "Security group rule already exists. Rule id is %s." % other["id"])
        sg["security_group_rules"].append(rule)
        return rule

    def _find_rule(self, rule_id):
        for sg in self.security_groups.values():
            for rule in sg["security_group_rules"]:
                if rule["id"] == rule_id:
                    return sg, rule
        raise ApiError(404, "Security group rule %s does not exist" % rule_id)

    def _new_image(self, body):
        image_id = str(uuid.uuid4())
        image = {"id": image_id, "name": body.get("name"), "status": "queued", "visibility": "shared",
                 "protected": False, "os_hidden": False, "checksum": None, "os_hash_algo": None,
                 "os_hash_value": None, "size": None, "virtual_size": None, "min_disk": 0, "min_ram": 0,
                 "disk_format": None, "container_format": None, "owner": PROJECT_ID, "tags": [],
                 "created_at": _now(), "updated_at": _now(), "self": "/v2/images/" + image_id,
                 "file": "/v2/images/%s/file" % image_id, "schema": "/v2/schemas/image"}
        for key, value in body.items():
            if key in ("id", "status", "checksum", "os_hash_value", "os_hash_algo", "size", "owner", "self", "file"):
                continue
            image[key] = value
        self.images[image_id] = image
        return image

    def _store_image_data(self, image, chunks, expected_length=None, corrupt=False):
        md5, sha512, size = hashlib.md5(), hashlib.sha512(), 0
        path = os.path.join(self.data_dir, image["id"])
        with open(path, "wb") as handle:
            for chunk in chunks:
                if corrupt and chunk:
                    chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                    corrupt = False
                md5.update(chunk)
                sha512.update(chunk)
                size += len(chunk)
                handle.write(chunk)
        if expected_length is not None and size != expected_length:
            raise ApiError(400, "upload ended after %d of %d bytes" % (size, expected_length))
        image.update(status="active", checksum=md5.hexdigest() if self.report_checksum else None,
                     os_hash_algo="sha512", os_hash_value=sha512.hexdigest(), size=size, updated_at=_now())

    def image_data(self, image_id):
        with open(os.path.join(self.data_dir, image_id), "rb") as handle:
            return handle.read()

    def _server_view(self, server):
        view = copy.deepcopy(server)
        view["addresses"] = {}
        for port in self.ports.values():
            if port["device_id"] != server["id"]:
                continue
            net = self.networks[port["network_id"]]
            entries = view["addresses"].setdefault(net["name"], [])
            for fixed in port["fixed_ips"]:
                entries.append({"addr": fixed["ip_address"], "version": 4, "OS-EXT-IPS:type": "fixed",
                                "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
            for fip in self.floating_ips.values():
                if fip["port_id"] == port["id"]:
                    entries.append({"addr": fip["floating_ip_address"], "version": 4, "OS-EXT-IPS:type": "floating",
                                    "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
        view["security_groups"] = [{"name": self.security_groups[sg]["name"]} for sg in server["_security_groups"]
                                   if sg in self.security_groups]
        del view["_security_groups"]
        del view["_user_data"]
        return view

    def server_user_data(self, name):
        for server in self.servers.values():
            if server["name"] == name:
                return server["_user_data"]
        raise KeyError(name)

    def _new_port(self, network_id, device_id):
        net = self.networks[network_id]
        subnet = self.subnets[net["subnets"][0]]
        address = subnet["cidr"].rsplit(".", 1)[0] + ".%d" % next(self._fixed)
        port_id = str(uuid.uuid4())
        self.ports[port_id] = {
            "id": port_id, "name": "", "network_id": network_id, "device_id": device_id,
            "device_owner": "compute:nova", "mac_address": "fa:16:3e:%02x:%02x:%02x" % tuple(os.urandom(3)),
            "fixed_ips": [{"subnet_id": subnet["id"], "ip_address": address}], "status": "ACTIVE",
            "admin_state_up": True, "tenant_id": PROJECT_ID, "project_id": PROJECT_ID, "security_groups": [],
            "description": "", "tags": [], "binding:vnic_type": "normal"}
        return self.ports[port_id]

    # ------------------------------------------------------------------ request dispatch

    def handle(self, method, path, query, headers, body_reader):
        """Return ``(status, headers, body)``; body is a dict (JSON), bytes, or None."""
        with self.lock:
            self.requests.append((method, path))
        for pattern, methods in ROUTES:
            match = re.fullmatch(pattern, path)
            if match and method in methods:
                handler = getattr(self, methods[method])
                if not methods[method].startswith(("keystone_", "version_")):
                    if headers.get("X-Auth-Token") != self.token:
                        return 401, {}, {"error": {"code": 401, "message": "The request you have made requires "
                                                                           "authentication.", "title": "Unauthorized"}}
                try:
                    if methods[method] == "glance_upload":
                        with self.lock:
                            image = self._image(match.group(1))
                        return handler(image, headers, body_reader)
                    body = body_reader()
                    data = json.loads(body) if body else {}
                    with self.lock:
                        return handler(query, data, *match.groups())
                except ApiError as error:
                    return error.status, {}, {"NeutronError" if path.startswith("/network") else "error":
                                              {"message": error.message, "code": error.status}}
        with self.lock:
            self.unknown.append((method, path, dict(query)))
        return 404, {}, {"error": {"message": "the test double does not know %s %s" % (method, path), "code": 404}}

    # ------------------------------------------------------------------ keystone

    def version_identity(self, query, data):
        return 300, {}, {"versions": {"values": [self._identity_version()]}}

    def version_identity_v3(self, query, data):
        return 200, {}, {"version": self._identity_version()}

    def _identity_version(self):
        return {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
                "links": [{"rel": "self", "href": self.url + "/identity/v3/"}],
                "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}]}

    def keystone_token(self, query, data):
        password = (data.get("auth", {}).get("identity", {}).get("password", {}).get("user", {}))
        if password.get("name") != USERNAME or password.get("password") != PASSWORD:
            return 401, {}, {"error": {"code": 401, "message": "The request you have made requires authentication.",
                                       "title": "Unauthorized"}}
        catalog = []
        for kind, name, path in (("compute", "nova", "/compute/v2.1"), ("image", "glance", "/image"),
                                 ("network", "neutron", "/network"), ("identity", "keystone", "/identity")):
            catalog.append({"type": kind, "name": name, "id": uuid.uuid4().hex, "endpoints": [
                {"id": uuid.uuid4().hex, "interface": interface, "region": REGION, "region_id": REGION,
                 "url": self.url + path} for interface in ("public", "internal", "admin")]})
        expires = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime(time.time() + 3600))
        token = {"token": {
            "methods": ["password"], "expires_at": expires, "issued_at": _now(), "audit_ids": [uuid.uuid4().hex],
            "user": {"id": USER_ID, "name": USERNAME, "domain": {"id": "default", "name": "Default"},
                     "password_expires_at": None},
            "project": {"id": PROJECT_ID, "name": "demo", "domain": {"id": "default", "name": "Default"}},
            "roles": [{"id": uuid.uuid4().hex, "name": "member"}, {"id": uuid.uuid4().hex, "name": "admin"}],
            "is_domain": False, "catalog": catalog}}
        return 201, {"X-Subject-Token": self.token}, token

    # ------------------------------------------------------------------ nova

    def version_compute(self, query, data):
        return 300, {}, {"versions": [self._compute_version()]}

    def version_compute_v21(self, query, data):
        return 200, {}, {"version": self._compute_version()}

    def _compute_version(self):
        return {"id": "v2.1", "status": "CURRENT", "version": COMPUTE_VERSION, "min_version": "2.1",
                "updated": "2013-07-23T11:33:21Z", "links": [{"rel": "self", "href": self.url + "/compute/v2.1/"}]}

    def nova_flavors(self, query, data):
        return 200, {}, {"flavors": list(self.flavors.values())}

    def nova_flavor(self, query, data, flavor_id):
        if flavor_id not in self.flavors:
            raise ApiError(404, "Flavor %s could not be found." % flavor_id)
        return 200, {}, {"flavor": self.flavors[flavor_id]}

    def nova_flavor_extra_specs(self, query, data, flavor_id):
        return 200, {}, {"extra_specs": {}}

    def nova_servers(self, query, data):
        servers = [self._server_view(s) for s in self.servers.values()]
        if "name" in query:
            servers = [s for s in servers if re.search(query["name"][0], s["name"])]
        if "status" in query:
            servers = [s for s in servers if s["status"] == query["status"][0]]
        return 200, {}, {"servers": servers}

    def _server(self, server_id):
        if server_id not in self.servers:
            raise ApiError(404, "Instance %s could not be found." % server_id)
        return self.servers[server_id]

    def nova_server(self, query, data, server_id):
        return 200, {}, {"server": self._server_view(self._server(server_id))}

    def nova_create_server(self, query, data):
        spec = data["server"]
        flavor_id = spec.get("flavorRef")
        if flavor_id not in self.flavors:
            raise ApiError(400, "Flavor %s could not be found." % flavor_id)
        image_id = spec.get("imageRef")
        if image_id not in self.images or self.images[image_id]["status"] != "active":
            raise ApiError(400, "Image %s is not active." % image_id)
        server_id = str(uuid.uuid4())
        groups = []
        for sg in spec.get("security_groups", [{"name": "default"}]):
            found = [k for k, v in self.security_groups.items() if sg["name"] in (v["name"], k)]
            if not found:
                raise ApiError(400, "Security group %s not found for project %s." % (sg["name"], PROJECT_ID))
            groups.append(found[0])
        flavor = self.flavors[flavor_id]
        server = {
            "id": server_id, "name": spec["name"], "status": "ACTIVE", "tenant_id": PROJECT_ID, "user_id": USER_ID,
            "metadata": dict(spec.get("metadata") or {}), "key_name": spec.get("key_name"),
            "flavor": {"original_name": flavor["name"], "vcpus": flavor["vcpus"], "ram": flavor["ram"],
                       "disk": flavor["disk"], "ephemeral": 0, "swap": 0, "extra_specs": {}},
            "image": {"id": image_id, "links": []}, "created": _now(), "updated": _now(), "hostId": uuid.uuid4().hex,
            "OS-EXT-AZ:availability_zone": spec.get("availability_zone") or "nova", "OS-EXT-STS:vm_state": "active",
            "OS-EXT-STS:task_state": None, "OS-EXT-STS:power_state": 1, "accessIPv4": "", "accessIPv6": "",
            "config_drive": "", "progress": 0, "tags": list(spec.get("tags") or []), "description": None,
            "locked": False, "os-extended-volumes:volumes_attached": [], "links": [],
            "_security_groups": groups, "_user_data": spec.get("user_data"),
        }
        for nic in spec.get("networks") or [{"uuid": self.private_net}]:
            if "uuid" in nic:
                if nic["uuid"] not in self.networks:
                    raise ApiError(400, "Network %s could not be found." % nic["uuid"])
                self._new_port(nic["uuid"], server_id)
            elif "port" in nic:
                self.ports[nic["port"]]["device_id"] = server_id
        self.servers[server_id] = server
        view = self._server_view(server)
        return 202, {}, {"server": {"id": server_id, "links": [], "OS-DCF:diskConfig": "MANUAL",
                                    "security_groups": view["security_groups"], "adminPass": "x"}}

    def nova_delete_server(self, query, data, server_id):
        self._server(server_id)
        for port_id in [p for p, port in self.ports.items() if port["device_id"] == server_id]:
            for fip in self.floating_ips.values():
                if fip["port_id"] == port_id:
                    fip.update(port_id=None, fixed_ip_address=None, status="DOWN")
            del self.ports[port_id]
        del self.servers[server_id]
        return 204, {}, None

    def nova_server_metadata(self, query, data, server_id):
        server = self._server(server_id)
        if data:
            server["metadata"].update(data.get("metadata") or {})
        return 200, {}, {"metadata": server["metadata"]}

    def nova_server_metadata_item(self, query, data, server_id, key):
        server = self._server(server_id)
        if key not in server["metadata"]:
            raise ApiError(404, "Metadata item was not found")
        del server["metadata"][key]
        return 204, {}, None

    def nova_server_tags(self, query, data, server_id):
        server = self._server(server_id)
        server["tags"] = list(data.get("tags") or [])
        return 200, {}, {"tags": server["tags"]}

    def nova_server_security_groups(self, query, data, server_id):
        server = self._server(server_id)
        return 200, {}, {"security_groups": [self._nova_sg(self.security_groups[sg])
                                             for sg in server["_security_groups"] if sg in self.security_groups]}

    def _nova_sg(self, sg):
        return {"id": sg["id"], "name": sg["name"], "description": sg["description"], "tenant_id": PROJECT_ID,
                "rules": []}

    def nova_server_action(self, query, data, server_id):
        server = self._server(server_id)
        if "addSecurityGroup" in data:
            name = data["addSecurityGroup"]["name"]
            found = [k for k, v in self.security_groups.items() if name in (v["name"], k)]
            if not found:
                raise ApiError(404, "Security group %s not found" % name)
            if found[0] not in server["_security_groups"]:
                server["_security_groups"].append(found[0])
            return 202, {}, None
        if "removeSecurityGroup" in data:
            name = data["removeSecurityGroup"]["name"]
            server["_security_groups"] = [sg for sg in server["_security_groups"]
                                          if name not in (self.security_groups[sg]["name"], sg)]
            return 202, {}, None
        raise ApiError(400, "the test double does not implement server action %s" % list(data))

    def nova_keypairs(self, query, data):
        return 200, {}, {"keypairs": [{"keypair": kp} for kp in self.keypairs.values()]}

    def nova_keypair(self, query, data, name):
        if name not in self.keypairs:
            raise ApiError(404, "Keypair %s not found for user %s" % (name, USER_ID))
        return 200, {}, {"keypair": self.keypairs[name]}

    def nova_create_keypair(self, query, data):
        spec = data["keypair"]
        if spec["name"] in self.keypairs:
            raise ApiError(409, "Key pair '%s' already exists." % spec["name"])
        public_key = spec.get("public_key") or "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIdouble generated"
        keypair = {"name": spec["name"], "public_key": public_key, "type": spec.get("type", "ssh"),
                   "fingerprint": hashlib.md5(public_key.encode()).hexdigest(), "user_id": USER_ID}
        self.keypairs[spec["name"]] = keypair
        return 200, {}, {"keypair": keypair}

    def nova_delete_keypair(self, query, data, name):
        self.keypairs.pop(name, None)
        return 202, {}, None

    # ------------------------------------------------------------------ neutron

    def version_network(self, query, data):
        return 200, {}, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                       "links": [{"rel": "self", "href": self.url + "/network/v2.0/"}]}]}

    def neutron_extensions(self, query, data):
        return 200, {}, {"extensions": [{"alias": alias, "name": alias, "description": "", "links": [],
                                         "updated": "2019-01-01T00:00:00-00:00"} for alias in NEUTRON_EXTENSIONS]}

    @staticmethod
    def _filter(items, query, fields):
        result = list(items)
        for field in fields:
            if field in query:
                wanted = query[field]
                result = [item for item in result if str(item.get(field)).lower() in [w.lower() for w in wanted]
                          or item.get(field) in wanted]
        return result

    def neutron_networks(self, query, data):
        return 200, {}, {"networks": self._filter(self.networks.values(), query, ("id", "name", "router:external"))}

    def neutron_network(self, query, data, net_id):
        if net_id not in self.networks:
            raise ApiError(404, "Network %s could not be found." % net_id)
        return 200, {}, {"network": self.networks[net_id]}

    def neutron_subnets(self, query, data):
        return 200, {}, {"subnets": self._filter(self.subnets.values(), query, ("id", "name", "network_id"))}

    def neutron_ports(self, query, data):
        return 200, {}, {"ports": self._filter(self.ports.values(), query, ("id", "device_id", "network_id"))}

    def neutron_port(self, query, data, port_id):
        if port_id not in self.ports:
            raise ApiError(404, "Port %s could not be found." % port_id)
        return 200, {}, {"port": self.ports[port_id]}

    def neutron_floating_ips(self, query, data):
        fips = self._filter(self.floating_ips.values(), query,
                            ("id", "port_id", "floating_network_id", "floating_ip_address", "fixed_ip_address"))
        return 200, {}, {"floatingips": fips}

    def neutron_floating_ip(self, query, data, fip_id):
        if fip_id not in self.floating_ips:
            raise ApiError(404, "Floating IP %s could not be found" % fip_id)
        return 200, {}, {"floatingip": self.floating_ips[fip_id]}

    def neutron_create_floating_ip(self, query, data):
        spec = data["floatingip"]
        net = self.networks.get(spec.get("floating_network_id"))
        if net is None or not net["router:external"]:
            raise ApiError(400, "Network %s is not a valid external network" % spec.get("floating_network_id"))
        subnet = self.subnets[net["subnets"][0]]
        fip_id = str(uuid.uuid4())
        fip = {"id": fip_id, "floating_network_id": net["id"], "router_id": None, "status": "DOWN",
               "floating_ip_address": subnet["cidr"].rsplit(".", 1)[0] + ".%d" % next(self._floating),
               "port_id": None, "fixed_ip_address": None, "tenant_id": PROJECT_ID, "project_id": PROJECT_ID,
               "description": spec.get("description", ""), "tags": [], "port_details": None,
               "created_at": _now(), "updated_at": _now(), "revision_number": 0}
        self.floating_ips[fip_id] = fip
        if spec.get("port_id"):
            self._associate(fip, spec["port_id"], spec.get("fixed_ip_address"))
        return 201, {}, {"floatingip": fip}

    def _associate(self, fip, port_id, fixed_ip=None):
        if port_id is None:
            fip.update(port_id=None, fixed_ip_address=None, status="DOWN")
            return
        port = self.ports.get(port_id)
        if port is None:
            raise ApiError(404, "Port %s could not be found." % port_id)
        fip.update(port_id=port_id, fixed_ip_address=fixed_ip or port["fixed_ips"][0]["ip_address"], status="ACTIVE")

    def neutron_update_floating_ip(self, query, data, fip_id):
        fip = self.floating_ips.get(fip_id)
        if fip is None:
            raise ApiError(404, "Floating IP %s could not be found" % fip_id)
        spec = data["floatingip"]
        if "port_id" in spec:
            self._associate(fip, spec["port_id"], spec.get("fixed_ip_address"))
        return 200, {}, {"floatingip": fip}

    def neutron_delete_floating_ip(self, query, data, fip_id):
        if self.floating_ips.pop(fip_id, None) is None:
            raise ApiError(404, "Floating IP %s could not be found" % fip_id)
        return 204, {}, None

    def neutron_security_groups(self, query, data):
        groups = self._filter(self.security_groups.values(), query, ("id", "name", "project_id", "tenant_id"))
        return 200, {}, {"security_groups": groups}

    def neutron_security_group(self, query, data, sg_id):
        if sg_id not in self.security_groups:
            raise ApiError(404, "Security group %s does not exist" % sg_id)
        return 200, {}, {"security_group": self.security_groups[sg_id]}

    def neutron_create_security_group(self, query, data):
        spec = data["security_group"]
        sg_id = self._new_security_group(spec["name"], spec.get("description", ""))
        if "stateful" in spec:
            self.security_groups[sg_id]["stateful"] = spec["stateful"]
        return 201, {}, {"security_group": self.security_groups[sg_id]}

    def neutron_update_security_group(self, query, data, sg_id):
        if sg_id not in self.security_groups:
            raise ApiError(404, "Security group %s does not exist" % sg_id)
        self.security_groups[sg_id].update(data["security_group"])
        return 200, {}, {"security_group": self.security_groups[sg_id]}

    def neutron_delete_security_group(self, query, data, sg_id):
        if sg_id not in self.security_groups:
            raise ApiError(404, "Security group %s does not exist" % sg_id)
        if any(sg_id in s["_security_groups"] for s in self.servers.values()):
            raise ApiError(409, "Security Group %s in use." % sg_id)
        del self.security_groups[sg_id]
        return 204, {}, None

    def neutron_rules(self, query, data):
        rules = [r for sg in self.security_groups.values() for r in sg["security_group_rules"]]
        return 200, {}, {"security_group_rules": self._filter(rules, query, ("id", "security_group_id", "direction"))}

    def neutron_create_rules(self, query, data):
        if "security_group_rules" in data:
            return 201, {}, {"security_group_rules": [self._new_rule(r) for r in data["security_group_rules"]]}
        return 201, {}, {"security_group_rule": self._new_rule(data["security_group_rule"])}

    def neutron_delete_rule(self, query, data, rule_id):
        sg, rule = self._find_rule(rule_id)
        sg["security_group_rules"].remove(rule)
        return 204, {}, None

    # ------------------------------------------------------------------ glance

    def version_image(self, query, data):
        return 300, {}, {"versions": [{"id": "v2.16", "status": "CURRENT",
                                       "links": [{"rel": "self", "href": self.url + "/image/v2/"}]}]}

    def _image(self, image_id):
        if image_id not in self.images:
            raise ApiError(404, "No image found with ID %s" % image_id)
        return self.images[image_id]

    def glance_images(self, query, data):
        images = [i for i in self.images.values() if not i.get("os_hidden")]
        for field in ("name", "owner", "status", "visibility", "id"):
            if field in query:
                images = [i for i in images if i.get(field) == query[field][0]]
        images.sort(key=lambda i: (i["created_at"], i["id"]))
        limit = int(query.get("limit", ["25"])[0])
        marker = query.get("marker", [None])[0]
        if marker:
            ids = [i["id"] for i in images]
            images = images[ids.index(marker) + 1:] if marker in ids else []
        page = images[:limit]
        body = {"images": page, "first": "/v2/images", "schema": "/v2/schemas/images"}
        if len(images) > limit:
            body["next"] = "/v2/images?marker=%s&limit=%d" % (page[-1]["id"], limit)
        return 200, {}, body

    def glance_image(self, query, data, image_id):
        return 200, {}, self._image(image_id)

    def glance_create_image(self, query, data):
        for key in ("disk_format", "container_format"):
            if key in data and data[key] is None:
                del data[key]
        image = self._new_image(data)
        return 201, {"OpenStack-image-import-methods": "glance-direct,web-download"}, image

    def glance_patch_image(self, query, data, image_id):
        image = self._image(image_id)
        for op in data:
            key = op["path"].lstrip("/")
            if op["op"] in ("add", "replace"):
                image[key] = op["value"]
            elif op["op"] == "remove":
                if key not in image:
                    raise ApiError(409, "Property %s does not exist." % key)
                del image[key]
        image["updated_at"] = _now()
        return 200, {}, image

    def glance_delete_image(self, query, data, image_id):
        image = self._image(image_id)
        if image.get("protected"):
            raise ApiError(403, "Image %s is protected and cannot be deleted." % image_id)
        del self.images[image_id]
        path = os.path.join(self.data_dir, image_id)
        if os.path.exists(path):
            os.unlink(path)
        return 204, {}, None

    def glance_action(self, query, data, image_id, action):
        image = self._image(image_id)
        if action == "deactivate":
            if image["status"] not in ("active", "deactivated"):
                raise ApiError(403, "Not allowed to deactivate image in status '%s'" % image["status"])
            image["status"] = "deactivated"
        else:
            if image["status"] not in ("active", "deactivated"):
                raise ApiError(403, "Not allowed to reactivate image in status '%s'" % image["status"])
            image["status"] = "active"
        return 204, {}, None

    def glance_upload(self, image, headers, body_reader):
        if image["status"] != "queued":
            return 409, {}, {"error": {"message": "Image status transition from %s to saving is not allowed"
                                       % image["status"], "code": 409}}
        with self.lock:
            failing = self.fail_uploads > 0
            if failing:
                self.fail_uploads -= 1
            corrupt = self.corrupt_uploads > 0
            if corrupt:
                self.corrupt_uploads -= 1
            image["status"] = "saving"
        try:
            length = headers.get("Content-Length")
            self._store_image_data(image, body_reader.chunks(), int(length) if length else None, corrupt=corrupt)
        except ApiError as error:
            image["status"] = "queued"
            return error.status, {}, {"error": {"message": error.message, "code": error.status}}
        if failing:
            # what a broken store does: Glance answers 500 and the image stays without data
            image.update(status="queued", checksum=None, size=None, os_hash_value=None, os_hash_algo=None)
            return 500, {}, {"error": {"message": "store backend failed (injected by the test)", "code": 500}}
        return 204, {}, None


ROUTES = [
    (r"/identity/?", {"GET": "version_identity"}),
    (r"/identity/v3/?", {"GET": "version_identity_v3"}),
    (r"/identity/v3/auth/tokens", {"POST": "keystone_token"}),
    (r"/compute/?", {"GET": "version_compute"}),
    (r"/compute/v2\.1/?", {"GET": "version_compute_v21"}),
    (r"/compute/v2\.1/flavors(?:/detail)?", {"GET": "nova_flavors"}),
    (r"/compute/v2\.1/flavors/([^/]+)", {"GET": "nova_flavor"}),
    (r"/compute/v2\.1/flavors/([^/]+)/os-extra_specs", {"GET": "nova_flavor_extra_specs"}),
    (r"/compute/v2\.1/servers(?:/detail)?", {"GET": "nova_servers", "POST": "nova_create_server"}),
    (r"/compute/v2\.1/servers/([^/]+)", {"GET": "nova_server", "DELETE": "nova_delete_server"}),
    (r"/compute/v2\.1/servers/([^/]+)/metadata", {"GET": "nova_server_metadata", "POST": "nova_server_metadata"}),
    (r"/compute/v2\.1/servers/([^/]+)/metadata/([^/]+)", {"DELETE": "nova_server_metadata_item"}),
    (r"/compute/v2\.1/servers/([^/]+)/tags", {"PUT": "nova_server_tags"}),
    (r"/compute/v2\.1/servers/([^/]+)/os-security-groups", {"GET": "nova_server_security_groups"}),
    (r"/compute/v2\.1/servers/([^/]+)/action", {"POST": "nova_server_action"}),
    (r"/compute/v2\.1/os-keypairs", {"GET": "nova_keypairs", "POST": "nova_create_keypair"}),
    (r"/compute/v2\.1/os-keypairs/([^/]+)", {"GET": "nova_keypair", "DELETE": "nova_delete_keypair"}),
    (r"/network/?", {"GET": "version_network"}),
    (r"/network/v2\.0/extensions", {"GET": "neutron_extensions"}),
    (r"/network/v2\.0/networks", {"GET": "neutron_networks"}),
    (r"/network/v2\.0/networks/([^/]+)", {"GET": "neutron_network"}),
    (r"/network/v2\.0/subnets", {"GET": "neutron_subnets"}),
    (r"/network/v2\.0/ports", {"GET": "neutron_ports"}),
    (r"/network/v2\.0/ports/([^/]+)", {"GET": "neutron_port"}),
    (r"/network/v2\.0/floatingips", {"GET": "neutron_floating_ips", "POST": "neutron_create_floating_ip"}),
    (r"/network/v2\.0/floatingips/([^/]+)", {"GET": "neutron_floating_ip", "PUT": "neutron_update_floating_ip",
                                             "DELETE": "neutron_delete_floating_ip"}),
    (r"/network/v2\.0/security-groups", {"GET": "neutron_security_groups",
                                         "POST": "neutron_create_security_group"}),
    (r"/network/v2\.0/security-groups/([^/]+)", {"GET": "neutron_security_group",
                                                 "PUT": "neutron_update_security_group",
                                                 "DELETE": "neutron_delete_security_group"}),
    (r"/network/v2\.0/security-group-rules", {"GET": "neutron_rules", "POST": "neutron_create_rules"}),
    (r"/network/v2\.0/security-group-rules/([^/]+)", {"DELETE": "neutron_delete_rule"}),
    (r"/image/?", {"GET": "version_image"}),
    (r"/image/v2/images", {"GET": "glance_images", "POST": "glance_create_image"}),
    (r"/image/v2/images/([^/]+)", {"GET": "glance_image", "PATCH": "glance_patch_image",
                                   "DELETE": "glance_delete_image"}),
    (r"/image/v2/images/([^/]+)/file", {"PUT": "glance_upload"}),
    (r"/image/v2/images/([^/]+)/actions/(deactivate|reactivate)", {"POST": "glance_action"}),
]


class _BodyReader:
    """Reads a request body once, whole (JSON) or in chunks (image data, plain or chunked encoding)."""

    def __init__(self, handler):
        self.handler = handler
        self.consumed = False

    def __call__(self):
        return b"".join(self.chunks())

    def drain(self):
        if not self.consumed:
            for _piece in self.chunks():
                pass

    def chunks(self, size=1 << 16):
        self.consumed = True
        rfile = self.handler.rfile
        if self.handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                line = rfile.readline().strip()
                length = int(line.split(b";")[0], 16)
                if length == 0:
                    rfile.readline()
                    return
                remaining = length
                while remaining:
                    piece = rfile.read(min(size, remaining))
                    remaining -= len(piece)
                    yield piece
                rfile.readline()
        remaining = int(self.handler.headers.get("Content-Length") or 0)
        while remaining:
            piece = rfile.read(min(size, remaining))
            if not piece:
                return
            remaining -= len(piece)
            yield piece


def _handler(double):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def _serve(self):
            parts = urlsplit(self.path)
            path = re.sub(r"//+", "/", parts.path).rstrip("/") or "/"
            query = parse_qs(parts.query)
            reader = _BodyReader(self)
            status, headers, body = double.handle(self.command, path, query, self.headers, reader)
            reader.drain()
            payload = b""
            content_type = "application/json"
            if isinstance(body, (dict, list)):
                payload = json.dumps(body).encode()
            elif isinstance(body, bytes):
                payload = body
                content_type = "application/octet-stream"
            self.send_response(status)
            if payload:
                self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-Openstack-Request-Id", "req-" + str(uuid.uuid4()))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if payload and self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _serve

    return Handler
