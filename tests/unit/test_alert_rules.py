"""docs/cvmfs-alerts.rules.yml has the shape ``promtool check rules`` accepts (promtool itself is not
installed here), and its expressions use only metrics the metrics program writes."""

import os
import re

import yaml

from ansible_collections.sharedsw.cvmfs.plugins.module_utils._health_metrics import CATALOGUE

RULES = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "cvmfs-alerts.rules.yml")
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def load():
    with open(RULES) as handle:
        return yaml.safe_load(handle)


def test_rule_groups_have_the_shape_prometheus_reads():
    document = load()
    assert set(document) == {"groups"}
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names)) and all(names)
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "limit", "rules"}
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule
            assert re.match(r"^[a-zA-Z_][a-zA-Z0-9_]*$", rule["alert"])
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert DURATION.match(rule.get("for", "0s")), rule
            assert all(isinstance(v, str) for v in rule.get("labels", {}).values())
            assert all(isinstance(v, str) for v in rule.get("annotations", {}).values())
            assert rule["labels"]["severity"] in ("warning", "critical")
            assert rule["annotations"]["summary"]


def test_expressions_use_only_metrics_the_program_writes():
    written = set(name for name, _kind, _help in CATALOGUE)
    for group in load()["groups"]:
        for rule in group["rules"]:
            used = set(re.findall(r"\bcvmfs_[a-z0-9_]+", rule["expr"]))
            assert used and used <= written, (rule["alert"], used - written)


def test_the_alerts_the_docs_promise_are_there():
    alerts = set(rule["alert"] for group in load()["groups"] for rule in group["rules"])
    assert {"CvmfsWhitelistExpiresSoon", "CvmfsReplicaLagging", "CvmfsPublishFailing"} <= alerts
