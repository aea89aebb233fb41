"""common role: the CernVM-FS version a role pins (``<role>_cvmfs_version``) is looked up among the
versions the package source offers (tasks/version_check.yml): ``2.12.0`` finds the Debian version
``2.12.0~1+debian12``, an exact string is taken as it is, and a version the source does not offer
fails before anything is installed, naming the variable and the versions there are."""

from tests.support.local_plays import run_plays, task_results

OFFERED = ("2.12.1~1+debian12", "2.12.0~1+debian12", "2.11.5~1+debian12")


def check(tmp_path, wanted, offered=OFFERED):
    plays = [{"hosts": "all", "gather_facts": False, "tasks": [
        {"name": "Version check", "ansible.builtin.include_role": {
            "name": "sharedsw.cvmfs.common", "tasks_from": "version_check.yml"},
         "vars": {"common_caller": "client", "common_cvmfs_version": wanted, "__common_cvmfs_offered": list(offered),
                  "common_packages": ["cvmfs", "cvmfs-server", "apache2"], "__common_pin_packages": ["cvmfs", "cvmfs-server"],
                  "__common_pin_separator": "="}},
        {"name": "Show the pin", "ansible.builtin.debug": {"var": "__common_cvmfs_pin"}},
        {"name": "Show the names", "ansible.builtin.debug": {"var": "__common_pinned_packages"}}]}]
    inventory = {"all": {"hosts": {"h": {"ansible_connection": "local",
                                         "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}
    return run_plays(tmp_path, plays, inventory)


def test_short_version_finds_the_package_version(tmp_path):
    rc, parsed, output = check(tmp_path, "2.12.0")
    assert rc == 0, output
    assert task_results(parsed, "h")["Show the pin"]["__common_cvmfs_pin"] == "2.12.0~1+debian12"
    # what apt installs: the packages of the cvmfs source at the version, the others as they are
    assert task_results(parsed, "h")["Show the names"]["__common_pinned_packages"] == [
        "cvmfs=2.12.0~1+debian12", "cvmfs-server=2.12.0~1+debian12", "apache2"]


def test_exact_package_version_is_taken_as_it_is(tmp_path):
    rc, parsed, output = check(tmp_path, "2.11.5~1+debian12")
    assert rc == 0, output
    assert task_results(parsed, "h")["Show the pin"]["__common_cvmfs_pin"] == "2.11.5~1+debian12"


def test_a_prefix_of_another_version_is_not_a_match(tmp_path):
    rc, parsed, output = check(tmp_path, "2.12")
    assert rc != 0, output


def test_a_version_the_source_does_not_offer_fails_naming_the_variable_and_the_choices(tmp_path):
    rc, parsed, output = check(tmp_path, "2.99.0")
    assert rc != 0
    message = [r for r in task_results(parsed, "h").values() if r.get("failed")][0]["msg"]
    assert "client_cvmfs_version is 2.99.0" in message
    assert "2.12.1~1+debian12, 2.12.0~1+debian12, 2.11.5~1+debian12" in message


def test_nothing_offered_says_so(tmp_path):
    rc, parsed, output = check(tmp_path, "2.12.0", offered=())
    message = [r for r in task_results(parsed, "h").values() if r.get("failed")][0]["msg"]
    assert "offers no CernVM-FS version" in message
