#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: image_sync
short_description: Bring an endorser's signed VM images that a site approved into the site's Glance
version_added: 0.1.0
author:
  - sharedsw.cvmfs developers (@sharedsw)
description:
  - Reads an endorser's image list (YAML with C(name), C(version), C(size), C(sha256) and a C(url) or a
    C(path) under C(/cvmfs) per image) and verifies its detached Ed25519 signature with the endorser's
    public key B(before) reading anything from it. An unsigned, tampered, expired or wrongly attributed
    list is refused with a message saying which.
  - A list must say when it was C(issued), and must end, at its C(expires) or O(max_age_days) after it
    was issued (the earlier of the two when both apply). A list without either is refused, as it would stay
    valid forever.
  - Refuses a list issued before the list last accepted (a replayed old list could bring back images the
    endorser withdrew). The synchronised images record the C(issued) time of their list in the property
    C(endorsed_list_issued); the newest record counts.
  - Of the endorsed images, takes those the site approved (O(approved)). Each one that is missing in
    Glance, or there with another size or SHA-256, is streamed from its source while its size and
    SHA-256 are checked (never held whole in memory), and uploaded only if both match. Glance's
    checksum and hash of the stored image are compared with the bytes sent; a damaged upload is deleted.
  - Uploaded images carry the properties C(endorser), C(endorsed_name), C(endorsed_version),
    C(endorsed_sha256) and C(endorsed_list_issued), plus the endorser's C(properties) of the entry.
  - Images of this endorser in the project that are no longer endorsed and approved, or that an upload
    replaced, are deactivated (running servers keep working, new ones cannot boot them); incomplete
    uploads (status C(queued) or C(killed)) are deleted. Deactivated images endorsed and approved
    again are reactivated. Images of other endorsers, or without an C(endorser) property, are never
    touched.
  - Uploads come first, deactivations last, so an image name always has an active version while a new
    version arrives.
  - The document C(docs/openstack.md) of the collection describes the image list format and how an
    endorser signs it (C(tools/image_list.py) of the collection, or C(openssl)).
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - sharedsw.cvmfs._openstack
  - sharedsw.cvmfs._openstack.action_group
options:
  approved:
    description:
      - The images this site approves. An image is synchronised when it is both endorsed and approved.
      - An approval without O(approved[].version) approves every version the endorser lists.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the image in the image list.
        type: str
        required: true
      version:
        description: Only this version of the image.
        type: str
  cvmfs_root:
    description:
      - Where C(/cvmfs) is mounted on the host the module runs on; image C(path)s under C(/cvmfs/) are read
        from here. The repository must be mounted (the host is a CernVM-FS client).
    type: path
    default: /cvmfs
  download_dir:
    description:
      - Directory for images downloaded from a C(url) while they are checked and uploaded; each file is
        removed afterwards. Needs room for the largest image. Default is the system's temporary directory.
    type: path
  endorser:
    description:
      - Name of the endorser whose key O(public_key) is. The image list must say the same in its
        C(endorser) key, and uploaded images record it in their C(endorser) property.
    type: str
    required: true
  image_list:
    description: Path of the image list on the host the module runs on.
    type: path
    required: true
  max_age_days:
    description:
      - Accept a list only for this many days after it was C(issued). Needed for lists without C(expires);
        with C(expires) the earlier end counts.
    type: int
  name_template:
    description:
      - Name of an uploaded image in Glance; C({name}) and C({version}) are replaced by the entry's.
      - With V({name}) several versions of one image share a Glance name, which Nova cannot pick from by name.
    type: str
    default: "{name}-{version}"
  public_key:
    description: Path of the endorser's Ed25519 public key (PEM, C(-----BEGIN PUBLIC KEY-----)).
    type: path
    required: true
  retries:
    description: How many times to retry a download or a Glance request that failed in a way a retry can fix.
    type: int
    default: 3
  signature:
    description: Path of the detached signature of O(image_list); default is O(image_list) with C(.sig) appended.
    type: path
  timeout:
    description: Seconds to wait for data from an image source before the download fails.
    type: int
    default: 60
  validate_certs:
    description: Verify the TLS certificates of C(https) image sources.
    type: bool
    default: true
  visibility:
    description: Visibility of uploaded images in Glance.
    type: str
    choices: [community, private, public, shared]
    default: private
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying target.
    support: full
    details: Verifies the list and reads Glance, then reports the actions it would take; downloads nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
    support: full
    details: Shows the status of each managed Glance image before and after.
requirements:
  - cryptography
  - PyYAML
  - requests
notes:
  - Deactivating an image needs the Glance policy C(deactivate) for the user of the cloud; many clouds give
    it to project members, some only to admins.
  - Run the module where the sources can be read, usually on C(localhost) (see the playbook
    C(sharedsw.cvmfs.distribute_images)), or on a CernVM-FS client for C(path) sources.
"""

EXAMPLES = r"""
- name: Images endorsed by images.example.org and approved here, in the project's Glance
  sharedsw.cvmfs.image_sync:
    cloud: mycloud
    endorser: images.example.org
    image_list: /srv/endorsed/images.yml
    public_key: /etc/sharedsw/endorsers/images.example.org.pub
    approved:
      - name: cvmfs-client-debian12
      - name: cvmfs-stratum1-el9
        version: "2026.11"
  delegate_to: localhost

- name: Only show what would change
  sharedsw.cvmfs.image_sync:
    cloud: mycloud
    endorser: images.example.org
    image_list: /srv/endorsed/images.yml
    public_key: /etc/sharedsw/endorsers/images.example.org.pub
    approved: [{name: cvmfs-client-debian12}]
  check_mode: true
  register: plan
"""

RETURN = r"""
actions:
  description:
    - What was done (or, in check mode, would be done), in order. C(action) is one of V(upload), V(update)
      (visibility, name or properties), V(reactivate), V(deactivate), V(delete) (incomplete upload).
  returned: always
  type: list
  elements: dict
  sample:
    - action: upload
      name: cvmfs-client-debian12
      version: "2026.11"
      glance_name: cvmfs-client-debian12-2026.11
      id: 6f2e0c53-1d5b-4c8e-9a57-0b1d1f3e2a10
      reason: missing in Glance
endorser:
  description: The endorser whose list was used.
  returned: always
  type: str
  sample: images.example.org
expires:
  description: When the image list stops being valid here (ISO 8601) - its C(expires), or C(issued) plus O(max_age_days).
  returned: always
  type: str
  sample: "2026-12-31T00:00:00+00:00"
images:
  description:
    - The images both endorsed and approved, with their Glance image after the run (C(glance_id) is
      V(null) in check mode for an image that would be uploaded).
  returned: always
  type: list
  elements: dict
  sample:
    - name: cvmfs-client-debian12
      version: "2026.11"
      sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      size: 2147483648
      glance_id: 6f2e0c53-1d5b-4c8e-9a57-0b1d1f3e2a10
      glance_name: cvmfs-client-debian12-2026.11
issued:
  description: When the endorser issued the image list (ISO 8601).
  returned: always
  type: str
  sample: "2026-11-20T12:00:00+00:00"
list_sha256:
  description: SHA-256 of the image list file that was verified, for the record.
  returned: always
  type: str
  sample: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
not_endorsed:
  description: Approvals that match no image of the endorser's list (nothing is done for them).
  returned: always
  type: list
  elements: dict
  sample:
    - name: cvmfs-squid-el8
      version: null
"""

import datetime

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._crypto import CRYPTOGRAPHY_IMP_ERR, HAS_CRYPTOGRAPHY
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._image_fetch import HAS_REQUESTS, REQUESTS_IMP_ERR, fetch_verified
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._image_glance import GlanceImages, glance_name
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._image_list import HAS_YAML, YAML_IMP_ERR, load_verified_list, select
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._image_signature import SIGNATURE_SUFFIX
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._module import CvmfsModule
from ansible_collections.sharedsw.cvmfs.plugins.module_utils._openstack import (
    ARGSPEC,
    HAS_OPENSTACKSDK,
    OPENSTACKSDK_IMP_ERR,
    connect,
)


class ImageSyncModule(CvmfsModule):
    argument_spec = dict(
        ARGSPEC,
        approved=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            version=dict(type="str"),
        )),
        cvmfs_root=dict(type="path", default="/cvmfs"),
        download_dir=dict(type="path"),
        endorser=dict(type="str", required=True),
        image_list=dict(type="path", required=True),
        max_age_days=dict(type="int"),
        name_template=dict(type="str", default="{name}-{version}"),
        public_key=dict(type="path", required=True),
        retries=dict(type="int", default=3),
        signature=dict(type="path"),
        timeout=dict(type="int", default=60),
        validate_certs=dict(type="bool", default=True),
        visibility=dict(type="str", default="private", choices=["community", "private", "public", "shared"]),
    )
    module_kwargs = dict(supports_check_mode=True)

    def run(self):
        for present, lib, error in ((HAS_CRYPTOGRAPHY, "cryptography", CRYPTOGRAPHY_IMP_ERR),
                                    (HAS_YAML, "PyYAML", YAML_IMP_ERR),
                                    (HAS_REQUESTS, "requests", REQUESTS_IMP_ERR),
                                    (HAS_OPENSTACKSDK, "openstacksdk", OPENSTACKSDK_IMP_ERR)):
            if not present:
                self.ansible.fail_json(msg=missing_required_lib(lib), exception=error)
        params = self.params
        if params["max_age_days"] is not None and params["max_age_days"] <= 0:
            raise CvmfsError("max_age_days must be a number of days above 0, got %d" % params["max_age_days"])
        max_age = datetime.timedelta(days=params["max_age_days"]) if params["max_age_days"] else None
        signature = params["signature"] or params["image_list"] + SIGNATURE_SUFFIX
        image_list = load_verified_list(params["image_list"], signature, params["public_key"], params["endorser"],
                                        max_age=max_age)
        wanted, not_endorsed = select(image_list, params["approved"])
        for entry in wanted:
            glance_name(entry, params["name_template"])
        self.results.update(endorser=image_list.endorser, list_sha256=image_list.sha256,
                            issued=image_list.issued.isoformat(), expires=image_list.expires.isoformat(),
                            not_endorsed=not_endorsed)
        for item in not_endorsed:
            self.ansible.warn("approved image %s%s is not in the image list of %s; nothing to do for it"
                              % (item["name"], (" version %s" % item["version"]) if item["version"] else "",
                                 image_list.endorser))

        conn = connect(params["cloud"], params["region_name"], params["api_timeout"])
        try:
            glance = GlanceImages(conn, params["endorser"], params["name_template"], params["visibility"],
                                  retries=params["retries"], list_issued=image_list.issued)
            before = self._statuses(glance.managed())
            actions = glance.plan(wanted)
            if not self.check_mode and actions:
                glance.apply(actions, lambda entry: fetch_verified(
                    entry, download_dir=params["download_dir"], cvmfs_root=params["cvmfs_root"],
                    timeout=params["timeout"], validate_certs=params["validate_certs"], retries=params["retries"]))
                after = self._statuses(glance.managed())
                current = glance.managed()
            else:
                after = self._predict(before, actions)
                current = glance.managed()
        finally:
            conn.close()

        self.results["changed"] = bool(actions)
        self.results["actions"] = [dict((k, v) for k, v in a.items() if k not in ("entry", "attributes"))
                                   for a in actions]
        self.results["images"] = self._wanted(wanted, current, actions, params["name_template"])
        if self.diff_mode:
            self.results["diff"] = {"before": {"images": before}, "after": {"images": after}}

    @staticmethod
    def _statuses(managed):
        return dict(("%s (%s)" % (i["name"], i["id"]), i["status"]) for i in managed)

    @staticmethod
    def _predict(before, actions):
        after = dict(before)
        outcome = {"reactivate": "active", "deactivate": "deactivated", "delete": None, "update": "active"}
        for action in actions:
            if action["action"] == "upload":
                after["%s (new)" % action["glance_name"]] = "active"
                continue
            key = "%s (%s)" % (action["glance_name"], action["id"])
            if outcome[action["action"]] is None:
                after.pop(key, None)
            else:
                after[key] = outcome[action["action"]]
        return after

    @staticmethod
    def _wanted(wanted, current, actions, template):
        uploaded = dict(((a["name"], a["version"]), a["id"]) for a in actions if a["action"] == "upload")
        result = []
        for entry in wanted:
            found = [i for i in current if (i["endorsed_name"], i["endorsed_version"]) == entry.key
                     and i["endorsed_sha256"] == entry.sha256 and i["status"] in ("active", "deactivated")]
            glance_id = uploaded.get(entry.key) if entry.key in uploaded else (found[0]["id"] if found else None)
            result.append({"name": entry.name, "version": entry.version, "sha256": entry.sha256, "size": entry.size,
                           "glance_id": glance_id, "glance_name": glance_name(entry, template)})
        return result


def main():
    ImageSyncModule()()


if __name__ == "__main__":
    main()
