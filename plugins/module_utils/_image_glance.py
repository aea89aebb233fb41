# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Endorsed VM images, the cloud: bring one project's Glance to the endorsed and approved images.

Internal to sharedsw.cvmfs; may change in any release. Owns :class:`GlanceImages` (``plan()`` /
``apply()``) and :func:`glance_name`; the images come verified from ``_image_fetch``, the entries
from ``_image_list``. Uses openstacksdk through ``_openstack``; must not import Ansible.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime

from ._common import CvmfsError
from ._image_list import (
    PROP_ENDORSER, PROP_LIST_ISSUED, PROP_NAME, PROP_SHA256, PROP_VERSION, RESERVED_PROPERTIES, parse_timestamp)
from ._openstack import OpenStackRetry, sdk_errors

INCOMPLETE = ("queued", "killed")
_UTC = datetime.timezone.utc


def glance_name(entry, template):
    try:
        return template.format(name=entry.name, version=entry.version)
    except (KeyError, IndexError, ValueError) as error:
        raise CvmfsError("name_template %r is not valid: %s; use {name} and {version}" % (template, error))


class GlanceImages:
    """The images one endorser manages in one project's Glance, and how to bring them to a wanted set."""

    def __init__(self, conn, endorser, name_template="{name}-{version}", visibility="private", retries=3,
                 list_issued=None):
        """``list_issued``: when the list the wanted entries come from was issued (an aware datetime);
        recorded on the images, and :meth:`plan` refuses a list issued before the newest record."""
        self.conn = conn
        self.retries = retries
        self.endorser = endorser
        self.name_template = name_template
        self.visibility = visibility
        self.list_issued = list_issued.astimezone(_UTC).isoformat() if list_issued else None
        self._managed = None

    # ---------------------------------------------------------------- reading

    def managed(self):
        """Images of this project carrying ``endorser=<endorser>``, as plain dicts."""
        if self._managed is None:
            with sdk_errors("list the images of the project in Glance"):
                images = OpenStackRetry.backoff(retries=self.retries)(self._list)()
            self._managed = [self._record(image) for image in images
                             if (image.properties or {}).get(PROP_ENDORSER) == self.endorser]
        return self._managed

    def _list(self):
        owner = self.conn.current_project_id
        return list(self.conn.image.images(owner=owner)) if owner else list(self.conn.image.images())

    @staticmethod
    def _record(image):
        # Glance's own names for everything: custom properties, and those openstacksdk maps to attributes
        # (os_distro, hw_*); values None are properties Glance does not have.
        body = image.to_dict(headers=False, computed=False, ignore_none=True, original_names=True)
        props = dict(body.pop("properties", None) or {})
        props.update((k, v) for k, v in body.items() if k not in RESERVED_PROPERTIES)
        return {"id": image.id, "name": image.name, "status": image.status, "size": image.size,
                "visibility": image.visibility, "checksum": image.checksum, "hash_algo": image.hash_algo,
                "hash_value": image.hash_value, "disk_format": image.disk_format,
                "container_format": image.container_format, "properties": props,
                "endorsed_name": props.get(PROP_NAME), "endorsed_version": props.get(PROP_VERSION),
                "endorsed_sha256": props.get(PROP_SHA256)}

    # ---------------------------------------------------------------- planning

    def _matches(self, image, entry):
        if image["endorsed_sha256"] != entry.sha256 or image["size"] != entry.size:
            return False
        if image["status"] not in ("active", "deactivated"):
            return False
        if image["hash_algo"] == "sha256" and image["hash_value"] and image["hash_value"] != entry.sha256:
            return False
        return True

    def _drift(self, image, entry):
        """Attributes of a good image that differ from what the entry and options want."""
        wanted = {"name": glance_name(entry, self.name_template), "visibility": self.visibility}
        wanted.update(entry.properties)
        if self.list_issued:
            wanted[PROP_LIST_ISSUED] = self.list_issued
        current = dict(image["properties"], name=image["name"], visibility=image["visibility"])
        return dict((k, v) for k, v in sorted(wanted.items()) if current.get(k) != v)

    def plan(self, wanted):
        """The actions that make Glance hold exactly the ``wanted`` entries (active), in the order to run them.

        Each action is a dict: ``action`` (upload, update, reactivate, deactivate, delete), ``name`` and
        ``version`` (the endorsed image), ``glance_name``, ``id`` (``None`` for an upload not yet done),
        ``reason``, and ``entry`` (internal; removed from module results).
        """
        managed = self.managed()
        self._refuse_an_older_list(managed)
        uploads, updates, reactivations, retirements = [], [], [], []
        kept = set()
        for entry in wanted:
            candidates = [i for i in managed if (i["endorsed_name"], i["endorsed_version"]) == entry.key]
            good = sorted([i for i in candidates if self._matches(i, entry)],
                          key=lambda i: (i["status"] != "active", i["id"]))
            target = glance_name(entry, self.name_template)
            if good:
                keep = good[0]
                kept.add(keep["id"])
                if keep["status"] == "deactivated":
                    reactivations.append(self._action("reactivate", entry, keep, "endorsed and approved again"))
                drift = self._drift(keep, entry)
                if drift:
                    action = self._action("update", entry, keep, "attributes differ: %s" % ", ".join(sorted(drift)))
                    action["attributes"] = drift
                    updates.append(action)
            else:
                reason = "missing in Glance"
                if candidates:
                    reason = "Glance has it with another size, SHA-256 or in status %s" % (
                        ", ".join(sorted(set(i["status"] for i in candidates))))
                uploads.append({"action": "upload", "name": entry.name, "version": entry.version,
                                "glance_name": target, "id": None, "reason": reason, "entry": entry})
        wanted_keys = set(e.key for e in wanted)
        for image in managed:
            if image["id"] in kept:
                continue
            key = (image["endorsed_name"], image["endorsed_version"])
            if key in wanted_keys:
                why = "replaced by a verified upload of the endorsed image"
            else:
                why = "no longer endorsed and approved"
            if image["status"] == "active":
                retirements.append(self._action("deactivate", None, image, why))
            elif image["status"] in INCOMPLETE:
                retirements.append(self._action("delete", None, image, "incomplete upload (status %s)" % image["status"]))
        retirements.sort(key=lambda a: (a["glance_name"] or "", a["id"]))
        return uploads + reactivations + updates + retirements

    def _refuse_an_older_list(self, managed):
        if not self.list_issued:
            return
        recorded = []
        for image in managed:
            value = image["properties"].get(PROP_LIST_ISSUED)
            if value:
                recorded.append((parse_timestamp(value, "property %s of Glance image %s" % (PROP_LIST_ISSUED, image["id"])),
                                 image["name"]))
        if not recorded:
            return
        newest = max(when for when, _name in recorded)
        if parse_timestamp(self.list_issued, "issued") < newest:
            names = sorted(set(name for when, name in recorded if when == newest))
            raise CvmfsError("the image list of %s was issued at %s, before the list last accepted here (issued at %s, "
                             "recorded on Glance image(s) %s): an older list is refused, it could bring back images "
                             "the endorser has withdrawn; get the endorser's current list"
                             % (self.endorser, self.list_issued, newest.isoformat(), ", ".join(names)))

    @staticmethod
    def _action(kind, entry, image, reason):
        return {"action": kind, "name": image["endorsed_name"] if entry is None else entry.name,
                "version": image["endorsed_version"] if entry is None else entry.version,
                "glance_name": image["name"], "id": image["id"], "reason": reason, "entry": entry}

    # ---------------------------------------------------------------- applying

    def apply(self, actions, fetch):
        """Run ``actions`` in order. ``fetch(entry)`` returns a :class:`VerifiedFile`."""
        for action in actions:
            kind = action["action"]
            if kind == "upload":
                action["id"] = self.upload(action["entry"], action["glance_name"], fetch)
            elif kind == "update":
                self._call("update image %s" % action["glance_name"], self.conn.image.update_image, action["id"],
                           **action["attributes"])
            elif kind == "reactivate":
                self._call("reactivate image %s" % action["glance_name"], self.conn.image.reactivate_image,
                           action["id"])
            elif kind == "deactivate":
                self._call("deactivate image %s (the cloud's policy must allow deactivate to this user)"
                           % action["glance_name"], self.conn.image.deactivate_image, action["id"])
            elif kind == "delete":
                self._call("delete incomplete image %s" % action["glance_name"], self.conn.image.delete_image,
                           action["id"], ignore_missing=True)
        self._managed = None
        return actions

    def _call(self, what, function, *args, **kwargs):
        with sdk_errors(what):
            return OpenStackRetry.backoff(retries=self.retries)(function)(*args, **kwargs)

    def upload(self, entry, name, fetch):
        verified = fetch(entry)
        try:
            properties = dict(entry.properties)
            properties.update({PROP_ENDORSER: self.endorser, PROP_NAME: entry.name, PROP_VERSION: entry.version,
                               PROP_SHA256: entry.sha256})
            if self.list_issued:
                properties[PROP_LIST_ISSUED] = self.list_issued
            with sdk_errors("upload image %s %s to Glance" % (entry.name, entry.version)):
                image = self.conn.image.create_image(
                    name, filename=verified.path, md5=verified.digests["md5"], sha256=verified.digests["sha256"],
                    disk_format=entry.disk_format, container_format=entry.container_format,
                    visibility=self.visibility, allow_duplicates=True, validate_checksum=True, wait=True,
                    **properties)
                stored = self.conn.image.get_image(image.id)
            problem = None
            if stored.status != "active":
                problem = "is in status %s after the upload" % stored.status
            elif stored.size != verified.size:
                problem = "holds %s bytes, %d were sent" % (stored.size, verified.size)
            elif stored.checksum and stored.checksum != verified.digests["md5"]:
                problem = "has checksum %s, the bytes sent have MD5 %s" % (stored.checksum, verified.digests["md5"])
            elif stored.hash_algo in verified.digests and stored.hash_value != verified.digests[stored.hash_algo]:
                problem = "has %s %s, the bytes sent have %s" % (
                    stored.hash_algo, stored.hash_value, verified.digests[stored.hash_algo])
            if problem:
                with sdk_errors("delete the damaged upload %s" % image.id):
                    self.conn.image.delete_image(image.id, ignore_missing=True)
                raise CvmfsError("image %s %s arrived damaged in Glance: image %s %s; it was deleted"
                                 % (entry.name, entry.version, image.id, problem))
            return image.id
        finally:
            verified.cleanup()
