"""publisher role: the files of a publish job and of its notification consumer (tasks/job_files.yml,
tasks/events_job.yml, tasks/credentials.yml, tasks/directories.yml) are written when they differ from
what the host holds (read once, tasks/file_states.yml), and left alone (their write tasks skipped,
nothing changed) when the host holds them already.

The role's tasks run for real (local connection, a host that is not booted) into a scratch tree,
twice; the second run finds every file as wanted. A changed file is written again.
"""

from tests.support.local_plays import assert_written_once_then_left_alone, run_tasks_in_scratch_dirs, tasks_that_ran

from .test_squid_config import FACTS

REPOSITORY = "sw.example.org"
CATALOGUE = [{"name": REPOSITORY, "stratum0": "s0.example.org", "gateway": {"enabled": True},
              "publishers": [{"host": "pub"}],
              "source": {"bucket": "software", "prefix": "cvmfs/", "schedule": "hourly",
                         "credentials": {"access_key": "AK", "secret_key": "SK"}}}]
ROLE_VARS = {"publisher_repositories": CATALOGUE, "publisher_host_name": "pub", "publisher_vault_enabled": False,
             "publisher_events_enabled": True, "publisher_events_provision": False,
             "publisher_events_amqp": {"host": "mq.example.org", "username": "pub", "password": "s3cret-amqp"},
             "publisher_announce_enabled": True,
             "publisher_announce_amqp": {"host": "mq.example.org", "username": "pub", "password": "s3cret-announce"},
             "__common_is_booted": False}
WRITES = ["Directories of the job configurations and states",
          "State directory of the job for " + REPOSITORY, "Credentials file of the job of " + REPOSITORY,
          "AMQP password of the announcements of " + REPOSITORY,
          "Job configuration of " + REPOSITORY, "Drop-in directories of the units of " + REPOSITORY,
          "Service drop-in with the owner of the job of " + REPOSITORY,
          "Timer drop-in with the schedule of the job of " + REPOSITORY,
          "AMQP password of the consumer of " + REPOSITORY, "Consumer configuration of " + REPOSITORY,
          "Drop-in directory of the consumer of " + REPOSITORY, "Consumer drop-in with the owner of " + REPOSITORY]


def _run(work):
    # the directories of the job configurations and states are the role's to make
    paths = {"__publisher_config_dir": str(work / "etc" / "publish"), "__publisher_systemd_dir": str(work / "systemd"),
             "__publisher_state_root": str(work / "state" / "publish")}
    tasks = [{"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.publisher", "tasks_from": name}, "vars": paths}
             for name in ("file_states.yml", "directories.yml")]
    tasks += [{"ansible.builtin.include_role": {"name": "sharedsw.cvmfs.publisher", "tasks_from": name},
               "vars": paths, "loop": "{{ publisher_repositories | sharedsw.cvmfs.publisher_jobs('pub') }}",
               "loop_control": {"loop_var": "__publisher_job"}}
              for name in ("job_files.yml", "events_job.yml")]
    return run_tasks_in_scratch_dirs(work, "pub", tasks, ROLE_VARS, ("etc", "systemd", "state"), FACTS)


def _written(results):
    return tasks_that_ran(results, WRITES)


def test_files_written_once_then_left_alone(tmp_path):
    assert_written_once_then_left_alone(lambda: _run(tmp_path), WRITES)


def test_a_changed_file_is_written_again(tmp_path):
    _run(tmp_path)
    (tmp_path / "etc" / "publish" / (REPOSITORY + ".json")).write_text("{}\n")
    (tmp_path / "etc" / "publish" / (REPOSITORY + ".amqp-password")).chmod(0o644)
    credentials = tmp_path / "etc" / "publish" / (REPOSITORY + ".credentials")
    credentials.write_text(credentials.read_text().replace("SK", "old"))
    (tmp_path / "state" / "publish").chmod(0o700)
    again = _run(tmp_path)
    assert _written(again) == ["Directories of the job configurations and states", "Credentials file of the job of " + REPOSITORY,
                               "Job configuration of " + REPOSITORY, "AMQP password of the consumer of " + REPOSITORY]
    assert "SK" in credentials.read_text()
    assert again["Job configuration of " + REPOSITORY]["changed"] is True
