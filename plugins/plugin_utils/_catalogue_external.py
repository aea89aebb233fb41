# -*- coding: utf-8 -*-
# Copyright: sharedsw.cvmfs contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The catalogue's entries for repositories published elsewhere, and the configuration repository.

Internal to sharedsw.cvmfs; may change in any release. Controller side only. Part of the one
catalogue schema (``_catalogue.ENTRY_SPEC`` includes these fields and calls these checks); kept
apart so that file stays small.

- An *external* entry has no ``stratum0``: clients read it from ``server_urls`` with its
  ``public_key``; with ``replicate`` (and ``url``) our stratum-1s replicate it.
- A *domain* entry is named ``*.<domain>``: one ``domain.d/<domain>.conf`` for every repository
  of the domain (``@fqrn@`` URLs, a keys directory).
- One entry may be the ``config_repository`` (``CVMFS_CONFIG_REPOSITORY`` of the clients); an
  external entry with neither URLs nor key then takes its settings from that repository.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._common import CvmfsError

_DOMAIN_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_KEY_SOURCES = ("pem", "file", "vault", "dir")
_PEM_START = "-----BEGIN PUBLIC KEY-----"

PUBLIC_KEY_SPEC = {
    "pem": {"type": "str", "no_log": False,
            "description": "The public key itself (PEM, C(-----BEGIN PUBLIC KEY-----))."},
    "file": {"type": "str",
             "description": "File on the controller holding the PEM public key."},
    "vault": {"type": "str",
              "description": "Repository name whose key the lookup M(sharedsw.cvmfs.repo_public_key) reads "
                             "from Vault (C(<prefix>/<vault>/public), the role's Vault settings); usually "
                             "the entry's own name."},
    "dir": {"type": "str",
            "description": "Domain entries only: directory on the controller whose C(*.pub) files are the "
                           "domain's keys (written to C(/etc/cvmfs/keys/<domain>/), C(CVMFS_KEYS_DIR))."},
}

ENTRY_FIELDS = {
    "server_urls": {"type": "list", "elements": "str", "default": [],
                    "description": "External entries: the URLs clients read the repository from "
                                   "(C(CVMFS_SERVER_URL), in order; C(@fqrn@) stands for the repository "
                                   "name and is required in a domain entry)."},
    "public_key": {"type": "dict", "options": PUBLIC_KEY_SPEC,
                   "description": "External entries: the repository's (or domain's) public key, from exactly "
                                  "one source. Own repositories take their keys from the roles' key source."},
    "config_repository": {"type": "bool", "default": False,
                          "description": "This repository is the clients' configuration repository "
                                         "(C(CVMFS_CONFIG_REPOSITORY)): it carries C(etc/cvmfs/) (C(domain.d), "
                                         "C(config.d), C(keys)) for other repositories. At most one entry."},
}

CLIENT_FIELDS = {
    "proxies": {"type": "list", "elements": "str", "default": [],
                "description": "Own proxies of this repository (or domain): load-balancing groups in fail-over "
                               "order, each C(http://a:3128|http://b:3128) (C(CVMFS_HTTP_PROXY)); empty uses the "
                               "client's proxies."},
    "repositories": {"type": "list", "elements": "str", "default": [],
                     "description": "Domain entries only: repositories of the domain the clients list in "
                                    "C(CVMFS_REPOSITORIES), mount statically and probe (with autofs any "
                                    "repository of the domain mounts on access)."},
}


def check(label, entry):
    """Check the external/domain fields of one validated entry and fill in the derived ones:
    ``external``, ``domain``, ``replicate`` (own: ``[stratum1]``, external: ``[]``)."""
    name = entry["name"]
    entry["domain"] = name[2:] if name.startswith("*.") else None
    entry["external"] = not entry["stratum0"]
    entry["settings_from_config_repository"] = False
    if entry["domain"] is not None:
        _check_domain(label, entry)
    elif entry["external"]:
        _check_external(label, entry)
    elif entry["server_urls"] or entry["public_key"]:
        raise CvmfsError("%s: server_urls and public_key are for external entries (no stratum0); own "
                         "repositories are read from their stratum-1s, with keys from the roles' key source" % label)
    if entry["replicate"] is None:
        entry["replicate"] = [] if entry["external"] else ["stratum1"]
    if entry["external"] and entry["replicate"] and not entry["url"]:
        raise CvmfsError("%s: replicate needs url, the stratum-0 (or stratum-1) URL our stratum-1s replicate "
                         "%s from (add-replica)" % (label, name))
    if entry["client"]["repositories"] and entry["domain"] is None:
        raise CvmfsError("%s: client.repositories is for domain entries (*.<domain>); this entry mounts %s itself"
                         % (label, name))
    if not all(proxy.strip() for proxy in entry["client"]["proxies"]):
        raise CvmfsError("%s: client.proxies items must be proxy lists such as http://p1:3128|http://p2:3128, "
                         "not empty" % label)
    if entry["config_repository"] and not entry["client"]["mount"]:
        raise CvmfsError("%s: config_repository needs client.mount: true (clients mount it first)" % label)
    return entry


def _check_domain(label, entry):
    domain = entry["domain"]
    if not _DOMAIN_RE.match(domain):
        raise CvmfsError("%s: %r is not a domain entry (*. and a lower-case DNS domain such as *.example.org) "
                         "nor a repository name" % (label, entry["name"]))
    if not entry["external"]:
        raise CvmfsError("%s: a domain entry (%s) describes repositories published elsewhere: remove stratum0 "
                         "(each own repository is an entry of its own)" % (label, entry["name"]))
    if entry["replicate"]:
        raise CvmfsError("%s: a domain entry cannot be replicated (add-replica needs one repository); give each "
                         "repository to replicate an entry of its own" % label)
    if entry["config_repository"]:
        raise CvmfsError("%s: config_repository must name one repository, not a domain entry" % label)
    _check_reachable(label, entry)
    if [url for url in entry["server_urls"] if "@fqrn@" not in url]:
        raise CvmfsError("%s: every server_urls item needs @fqrn@ in a domain entry (one URL pattern for every "
                         "repository of %s)" % (label, domain))
    for repository in entry["client"]["repositories"]:
        if not repository.endswith("." + domain):
            raise CvmfsError("%s: client.repositories: %s is not in %s" % (label, repository, domain))


def _check_external(label, entry):
    if "." not in entry["name"]:
        raise CvmfsError("%s: name %r is not a fully qualified repository name (an external entry needs its "
                         "domain, e.g. %s.example.org)" % (label, entry["name"], entry["name"]))
    if entry["publishers"]:
        raise CvmfsError("%s: publishers need a stratum0 here (an external entry is published elsewhere)" % label)
    if not (entry["server_urls"] or entry["url"] or entry["public_key"]):
        entry["settings_from_config_repository"] = True
        return
    _check_reachable(label, entry)


def _check_reachable(label, entry):
    missing = [what for what, present in (("server_urls (or url)", entry["server_urls"] or entry["url"]),
                                          ("public_key", entry["public_key"])) if not present]
    if missing:
        raise CvmfsError("%s: an external entry (no stratum0) needs %s%s" % (
            label, " and ".join(missing),
            "" if entry["domain"] else ", or neither when a config_repository entry carries its settings"))
    _check_key(label, entry)


def _check_key(label, entry):
    key = entry["public_key"]
    given = [source for source in _KEY_SOURCES if key.get(source)]
    if len(given) != 1:
        raise CvmfsError("%s: public_key takes exactly one of %s (got %s)"
                         % (label, ", ".join(_KEY_SOURCES), ", ".join(given) or "none"))
    if key["dir"] and entry["domain"] is None:
        raise CvmfsError("%s: public_key.dir is for domain entries (*.<domain>); give this repository's key as "
                         "pem, file or vault" % label)
    if key["pem"] and not key["pem"].lstrip().startswith(_PEM_START):
        raise CvmfsError("%s: public_key.pem is not a PEM public key (%s ...)" % (label, _PEM_START))


def check_config_repository(entries, label_of):
    """At most one config repository; external entries without settings need one."""
    marked = [index for index, entry in enumerate(entries) if entry["config_repository"]]
    if len(marked) > 1:
        raise CvmfsError("%s: config_repository is also set on %s; a client has one configuration repository"
                         % (label_of(marked[1]), label_of(marked[0])))
    if marked:
        return
    for index, entry in enumerate(entries):
        if entry["settings_from_config_repository"]:
            raise CvmfsError("%s: an external entry (no stratum0) needs server_urls (or url) and public_key, "
                             "or a config_repository entry in the catalogue that carries its settings"
                             % label_of(index))
