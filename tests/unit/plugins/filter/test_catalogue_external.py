"""The repository catalogue: external entries (no stratum-0 here), domain entries (`*.<domain>`)
and the configuration repository; their derived values and the errors they are refused with."""

import pytest

from ansible_collections.sharedsw.cvmfs.plugins.plugin_utils._catalogue import normalise

from .test_catalogue import error_of

PEM = "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n"


def own(**fields):
    return dict({"name": "sw.example.org", "stratum0": "s0.example.org"}, **fields)


def external(**fields):
    return dict({"name": "stack.community.org", "server_urls": ["http://s1.community.org/cvmfs/@fqrn@"],
                 "public_key": {"pem": PEM}}, **fields)


def domain(**fields):
    return dict({"name": "*.community.org", "server_urls": ["http://s1.community.org/cvmfs/@fqrn@"],
                 "public_key": {"dir": "keys/community.org"}}, **fields)


def test_own_entries_keep_their_defaults():
    (repo,) = normalise([own()])
    assert repo["external"] is False and repo["domain"] is None
    assert repo["replicate"] == ["stratum1"] and repo["config_repository"] is False
    assert repo["client"]["proxies"] == [] and repo["client"]["repositories"] == []
    assert repo["server_urls"] == [] and repo["public_key"] is None


def test_external_entry_is_not_replicated_unless_asked():
    (repo,) = normalise([external()])
    assert repo["external"] is True and repo["stratum0"] is None
    assert repo["replicate"] == [] and repo["url"] is None
    assert repo["gateway"]["url"] is None
    assert repo["settings_from_config_repository"] is False


def test_external_entry_replicated_from_a_remote_url():
    (repo,) = normalise([external(url="http://s0.community.org/cvmfs/stack.community.org/",
                                  replicate=["stratum1"], public_key={"file": "keys/stack.pub"})])
    assert repo["url"] == "http://s0.community.org/cvmfs/stack.community.org"
    assert repo["replicate"] == ["stratum1"]


def test_domain_entry():
    (repo,) = normalise([domain(client={"repositories": ["a.community.org", "b.community.org"],
                                        "proxies": ["http://p1:3128|http://p2:3128", "http://p3:3128"]})])
    assert repo["external"] is True and repo["domain"] == "community.org"
    assert repo["replicate"] == [] and repo["client"]["repositories"] == ["a.community.org", "b.community.org"]


def test_config_repository_and_the_entries_it_configures():
    cfg = external(name="config.community.org", config_repository=True)
    bare = {"name": "tools.community.org"}
    entries = normalise([own(), cfg, bare])
    assert entries[1]["config_repository"] is True
    assert entries[2]["external"] is True and entries[2]["settings_from_config_repository"] is True
    assert entries[0]["settings_from_config_repository"] is False


@pytest.mark.parametrize("entries, expected", [
    ([{"name": "tools.community.org"}],
     "external entry (no stratum0) needs server_urls (or url) and public_key"),
    ([external(public_key=None)], "external entry (no stratum0) needs public_key"),
    ([external(server_urls=[])], "external entry (no stratum0) needs server_urls (or url)"),
    ([external(name="stack")], "name 'stack' is not a fully qualified repository name"),
    ([external(replicate=["stratum1"])], "replicate needs url"),
    ([external(publishers=[{"host": "p"}], source={"bucket": "b"})], "publishers need a stratum0"),
    ([external(public_key={"pem": PEM, "file": "x.pub"})], "public_key takes exactly one of"),
    ([external(public_key={})], "public_key takes exactly one of"),
    ([external(public_key={"pem": "ssh-rsa AAAA"})], "public_key.pem is not a PEM public key"),
    ([external(public_key={"dir": "keys"})], "public_key.dir is for domain entries"),
    ([own(server_urls=["http://x/cvmfs/@fqrn@"])], "server_urls and public_key are for external entries"),
    ([own(public_key={"pem": PEM})], "server_urls and public_key are for external entries"),
    ([domain(name="*.Not A Domain")], "'*.Not A Domain' is not a domain entry"),
    ([domain(stratum0="s0")], "a domain entry (*.community.org) describes repositories published elsewhere"),
    ([domain(server_urls=["http://s1.community.org/cvmfs/stack"])], "every server_urls item needs @fqrn@"),
    ([domain(replicate=["stratum1"])], "a domain entry cannot be replicated"),
    ([domain(config_repository=True)], "config_repository must name one repository"),
    ([domain(client={"repositories": ["a.other.org"]})], "a.other.org is not in community.org"),
    ([external(client={"repositories": ["a.community.org"]})], "client.repositories is for domain entries"),
    ([external(client={"proxies": [""]})], "client.proxies items must be proxy lists"),
    ([external(config_repository=True), external(name="c2.community.org", config_repository=True)],
     "config_repository is also set on cvmfs_repositories[0] (stack.community.org); a client has one"),
    ([external(config_repository=True, client={"mount": False})], "config_repository needs client.mount"),
    ([domain(), domain()], "repository *.community.org is already described"),
])
def test_refusals(entries, expected):
    message = error_of(*entries)
    assert expected in message, message
    assert message.startswith("cvmfs_repositories[")
