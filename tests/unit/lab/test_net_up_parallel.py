"""tools/lab/net-up.sh run by several hosts booting at once (hosts-up.sh boots them in parallel):
one bridge, one NAT rule, no error. Before the lock, six parallel calls left five rules and an nft
syntax error (a caller found the bridge before its address). Uses a bridge and table of its own."""

import os
import shutil
import subprocess
import tempfile
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
LAB = os.path.join(ROOT, "tools", "lab")


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a bridge needs root")
def test_parallel_net_up_makes_one_bridge_and_one_rule():
    tag = uuid.uuid4().hex[:6]
    state = tempfile.mkdtemp(prefix="lab-net-")
    env = dict(os.environ, LAB_BRIDGE="cvmfsn" + tag, LAB_NFT_TABLE="sharedsw_cvmfs_nettest_" + tag,
               LAB_GW="10.250.%d.1" % (int(tag, 16) % 250), LAB_STATE_DIR=state)
    try:
        calls = [subprocess.Popen([os.path.join(LAB, "net-up.sh")], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _call in range(6)]
        outputs = [call.communicate(timeout=60) + (call.returncode,) for call in calls]
        assert [rc for _out, _err, rc in outputs] == [0] * 6, outputs
        assert all(not err for _out, err, _rc in outputs), outputs
        table = subprocess.run(["nft", "list", "table", "ip", env["LAB_NFT_TABLE"]], capture_output=True, text=True,
                               check=True).stdout
        assert table.count("masquerade") == 1, table
        assert "ip saddr 10.250.%d.0/24 " % (int(tag, 16) % 250) in table, table
    finally:
        subprocess.run([os.path.join(LAB, "net-down.sh"), "--force"], env=env, capture_output=True, check=False)
        shutil.rmtree(state, ignore_errors=True)
    assert subprocess.run(["ip", "link", "show", env["LAB_BRIDGE"]], capture_output=True, check=False).returncode != 0
