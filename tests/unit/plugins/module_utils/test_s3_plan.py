"""The plan of the S3 sync engine (_s3_plan) from plain entries and trees: no server, no disk."""

import os
import shutil
import subprocess
import sys

from ansible_collections.sharedsw.cvmfs.plugins.module_utils import _s3_plan as plan_mod

MODULE_UTILS = os.path.dirname(os.path.abspath(plan_mod.__file__))


class Listed:
    def __init__(self, size=3, etag="e", last_modified="2026-01-01T00:00:00.000Z"):
        self.size, self.etag, self.last_modified = size, etag, last_modified


def entry(path, action="fetch", is_dir=False):
    made = plan_mod.Entry(path, ("cvmfs/" + path + ("/" if is_dir else "")).encode(), is_dir, Listed())
    made.action = action
    made.bytes = 3 if action == "fetch" else 0
    return made


def test_pure_parts_import_without_boto3_ansible_or_the_rest_of_the_engine(tmp_path):
    """Only the pure files are copied, and boto3, botocore and Ansible cannot be imported."""
    package = tmp_path / "pure"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("_s3_rules", "_s3_metadata", "_s3_plan"):
        shutil.copy(os.path.join(MODULE_UTILS, name + ".py"), str(package))
    code = ("import sys\n"
            "for name in ('boto3', 'botocore', 's3transfer', 'ansible'):\n"
            "    sys.modules[name] = None\n"
            "from pure import _s3_metadata, _s3_plan, _s3_rules\n"
            "print(_s3_rules.check_key(b'a/b')[0], _s3_metadata.parse_mode('755'))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["a/b", str(0o755)]


def test_plan_adds_replaces_and_deletes():
    entries = {e.name: e for e in (entry("new"), entry("was_dir"), entry("same", "keep"), entry("d", "keep", True))}
    tree = {"was_dir": ("d", 0, 0, 0o755), "was_dir/x": ("f", 5, 0, 0o644), "same": ("f", 3, 0, 0o644),
            "d": ("d", 0, 0, 0o755), "gone": ("f", 7, 0, 0o644)}
    plan = plan_mod.make_plan(entries, tree)
    assert [e.path for e in plan["install"]] == ["new", "was_dir"]
    assert plan["remove_in_way"] == [("was_dir", tree["was_dir"])]
    assert plan["delete"] == [("gone", tree["gone"])]
    assert sorted(plan["added"]) == [("new", 3)] and plan["updated"] == [("was_dir", 3)]
    assert sorted(plan["deleted"]) == [("gone", 7), ("was_dir/x", 5)]
    assert sorted(plan["unchanged"]) == [("d", 0), ("same", 3)]


def test_plan_keeps_rejected_and_unselected_paths():
    rejected = entry("bad")
    rejected.reason = "nope"
    tree = {"bad": ("f", 1, 0, 0o644), "private.tmp": ("f", 1, 0, 0o644), "stale": ("f", 1, 0, 0o644)}
    plan = plan_mod.make_plan({"bad": rejected}, tree, selected=lambda path: not path.endswith(".tmp"))
    assert [path for path, unused in plan["delete"]] == ["stale"]
    assert plan_mod.make_plan({"bad": rejected}, tree, delete=False)["delete"] == []


def test_file_key_that_is_also_a_directory_prefix_is_a_conflict():
    entries = {e.name: e for e in (entry("a"), entry("a/b"), entry("A/c"))}
    found = plan_mod.tree_conflicts(entries, "cvmfs/", reject_case_conflicts=True)
    assert [(e.path, reason.split(":")[0].split(" (")[0]) for e, reason in found] == [
        ("a", "is both a file and a directory prefix"), ("a/b", "case-only duplicate"), ("A/c", "case-only duplicate")]
