"""A lab host offers what CernVM-FS needs: FUSE, overlayfs (also over a FUSE lower layer, as
cvmfs_server does) that cvmfs_server's modprobe test can see, autofs where the kernel has it, and a
systemd that boots without failed units."""

import pytest
import testinfra


@pytest.fixture(scope="module")
def host(request):
    return testinfra.get_host("ansible://lab-selftest", ansible_inventory=request.config.option.ansible_inventory)


def test_systemd_running_without_failed_units(host):
    assert host.run("systemctl is-system-running").stdout.strip() == "running", \
        host.run("systemctl --failed --no-legend").stdout


def test_private_network(host):
    assert sorted(host.interface.names()) == ["eth0", "lo"]
    assert host.interface("eth0").addresses[0] == "10.77.0.20"


def test_fuse_and_overlay_over_fuse(host):
    script = """set -e
    d=$(mktemp -d); mkdir -p $d/src $d/sq $d/upper $d/work $d/merged
    echo payload > $d/src/file
    mksquashfs $d/src $d/img.sqfs -noappend -no-progress >/dev/null
    squashfuse $d/img.sqfs $d/sq                       # FUSE mount (/dev/fuse)
    cat $d/sq/file
    mount -t overlay overlay -o lowerdir=$d/sq,upperdir=$d/upper,workdir=$d/work $d/merged
    echo changed > $d/merged/file
    cat $d/merged/file $d/sq/file
    umount $d/merged; fusermount3 -u $d/sq; rm -rf $d
    """
    out = host.run("bash -c %s", script)
    assert out.rc == 0, out.stderr
    assert out.stdout.split() == ["payload", "changed", "payload"]
    assert host.run("test -c /dev/fuse").rc == 0
    # cvmfs2 opens it as the cvmfs user: usable by every user, as udev makes it on a machine
    assert host.file("/dev/fuse").mode == 0o666
    assert host.run("setpriv --reuid=65534 --regid=65534 --clear-groups sh -c 'exec 3<>/dev/fuse'").rc == 0


def kernel_filesystems(host):
    return [line.split()[-1] for line in host.file("/proc/filesystems").content_string.splitlines() if line.strip()]


def test_modprobe_sees_the_kernels_overlayfs(host):
    # cvmfs_server mkfs: "modprobe -q overlay || test -d /sys/module/overlay"; /sys/module is hidden here
    assert "overlay" in kernel_filesystems(host)
    out = host.run("modprobe -q overlay")
    assert out.rc == 0, "modprobe cannot see overlay: mkfs would say 'neither OverlayFS nor AUFS detected'"
    assert host.run("modprobe -q no_such_module_xyz").rc != 0


def test_autofs_mounts_on_access(host):
    if "autofs" not in kernel_filesystems(host):
        pytest.skip("autofs: this kernel has none; clients mount statically there (client role, mount mode auto)")
    assert host.service("autofs").is_running
    out = host.run("ls /mnt/auto/scratch >/dev/null && findmnt -n -o FSTYPE /mnt/auto/scratch")
    assert out.rc == 0 and out.stdout.strip() == "tmpfs", (out.stdout, out.stderr)
