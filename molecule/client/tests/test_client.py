"""Testinfra checks of the client scenario: configuration files, the mounts the kernel allows (autofs
where it has autofs, else static mounts from /etc/fstab: client_mount_mode auto), CVMFS_NFILES within
the hard limit of open files, and the repository mounted and read for real."""

REPO = "lab-client.cvmfs.test"
MOUNT = "/cvmfs/" + REPO
CVMFS_DEFAULT_NFILES = 131072


def kernel_has_autofs(host):
    return "autofs" in host.file("/proc/filesystems").content_string.split()


def hard_open_files(host):
    """The hard limit of open files of systemd (PID 1), the one the role reads."""
    line = [line for line in host.file("/proc/1/limits").content_string.splitlines()
            if line.startswith("Max open files")][0]
    return int(line.split()[4])


def fstab_entries(host):
    return [line.split() for line in host.file("/etc/fstab").content_string.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_default_local(client):
    text = client.file("/etc/cvmfs/default.local").content_string
    assert "CVMFS_REPOSITORIES='%s'" % REPO in text
    assert "CVMFS_HTTP_PROXY='DIRECT'" in text
    assert "CVMFS_SEND_INFO_HEADER=yes" in text


def test_repository_config_and_key(client):
    conf = client.file("/etc/cvmfs/config.d/%s.conf" % REPO).content_string
    assert "CVMFS_SERVER_URL='http://10.77.0.60/cvmfs/%s'" % REPO in conf
    assert client.file("/etc/cvmfs/keys/cvmfs.test/%s.pub" % REPO).contains("BEGIN PUBLIC KEY")


def test_mounts_are_the_ones_the_kernel_allows(client):
    autofs_map = client.file("/etc/auto.master.d/cvmfs.autofs")
    in_fstab = [entry for entry in fstab_entries(client) if entry[1:3] == [MOUNT, "cvmfs"]]
    if kernel_has_autofs(client):
        assert autofs_map.exists
        assert client.service("autofs").is_running
        assert not in_fstab
    else:
        assert not autofs_map.exists
        assert in_fstab == [[REPO, MOUNT, "cvmfs", "defaults,_netdev,nodev", "0", "0"]]
        # mounted by the run, before anything read it (autofs would mount on first access only)
        assert client.mount_point(MOUNT).exists
        # the automounter (the autofs package comes with cvmfs) cannot run here: off, and not failed
        assert not client.service("autofs").is_enabled
        assert client.run("systemctl is-failed autofs.service").stdout.strip() != "failed"


def test_nfiles_within_the_hard_limit_of_open_files(client):
    hard = hard_open_files(client)
    shown = client.check_output("cvmfs_config showconfig %s | grep '^CVMFS_NFILES='" % REPO)
    nfiles = int(shown.split("=", 1)[1].split()[0])
    assert nfiles == min(hard, CVMFS_DEFAULT_NFILES), shown
    if hard < CVMFS_DEFAULT_NFILES:
        assert "default.local" in shown


def test_repository_is_mounted_and_readable(client):
    assert client.run("cvmfs_config probe %s" % REPO).rc == 0
    # mkfs puts new_repository in the root catalogue: read through the mount, from the stratum-0
    assert client.file("%s/new_repository" % MOUNT).exists
    assert client.run("cat %s/new_repository" % MOUNT).rc == 0
    assert int(client.check_output("attr -qg revision %s" % MOUNT)) >= 1
    mount = client.mount_point(MOUNT)
    assert mount.exists and mount.filesystem == "fuse", (mount.device, mount.filesystem)
    assert mount.device == "cvmfs2"
