"""The lab keeps to itself, and leaves nothing behind (on the lab instance "eng").

Each lab host's namespace rejects whatever would leave its eth0 for an address outside
the lab subnet, the engine's own traffic (a pull's DNS query to the machine's resolver)
and its containers' alike: it fails at once instead of timing out, and nothing leaves.
lab_state=absent removes everything, and the lab comes back from nothing.
"""

import os
import signal
import subprocess
import time

import docker
import pytest

import eng_lab
import labkit
# The module-scoped instance.
from eng_lab import eng  # noqa: F401 pylint: disable=unused-import

# An address outside the lab that nothing should ever be sent to (TEST-NET-1).
OUTSIDE = "192.0.2.1"


def _reject_counts(host):
    """Packets rejected so far in host's namespace: {(family, chain rule): packets}."""
    counts = {}
    for tool in ("iptables", "ip6tables"):
        out = eng_lab.in_ns(host, [tool, "-w", "-L", "LAB-EGRESS", "-v", "-x", "-n"]).stdout
        counts[tool] = sum(int(line.split()[0]) for line in out.splitlines() if "REJECT" in line)
    return counts


def test_a_pull_of_a_missing_image_fails_at_once_and_nothing_leaves_the_lab(eng):
    client = docker.APIClient(base_url=eng_lab.socket_url("eng1"), timeout=60)
    before = _reject_counts("eng1")
    capture = labkit.capture_leaving("xhv-eng1", eng_lab.SUBNET)
    started = time.time()
    with pytest.raises(docker.errors.APIError) as failed:
        client.pull("crosshost-lab/missing", tag="1")
    took = time.time() - started
    out, err = labkit.stop_capture(capture)
    # Before the firewall: a 20 s DNS timeout against the machine's resolver, outside the lab.
    assert took < 3, "the pull took %.1f s to fail: %s" % (took, failed.value)
    assert "operation not permitted" in str(failed.value) or "refused" in str(failed.value), str(failed.value)
    assert _reject_counts("eng1")["iptables"] > before["iptables"]
    assert out.strip() == "", "traffic left lab host eng1 for outside the lab:\n%s" % out
    assert "\n0 packets captured" in "\n" + err, err


def test_containers_reach_other_lab_hosts_and_nothing_else(eng):
    client = docker.DockerClient(base_url=eng_lab.socket_url("eng1"), timeout=60)
    eng2 = eng_lab.address("eng2")
    server = eng_lab.in_ns("eng2", ["true"])  # the namespace exists
    assert server.returncode == 0
    listener = subprocess.Popen(["nsenter", "--net=/run/netns/eng2", "socat", "TCP-LISTEN:7777,reuseaddr,fork",
                                 "SYSTEM:echo lab-ok"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = _reject_counts("eng1")
    capture = labkit.capture_leaving("xhv-eng1", eng_lab.SUBNET)
    try:
        time.sleep(0.3)
        script = ("socat -T3 - TCP:%s:7777,connect-timeout=5 </dev/null; "
                  "echo outside; socat -T3 - TCP:%s:80,connect-timeout=10 </dev/null; echo rc=$?; "
                  "echo dns; nslookup registry-1.docker.io; echo rc=$?") % (eng2, OUTSIDE)
        started = time.time()
        output = client.containers.run("crosshost-lab/client:1", ["sh", "-c", script], remove=True, stderr=True)
        took = time.time() - started
    finally:
        listener.kill()
        listener.wait()
    out, err = labkit.stop_capture(capture)
    text = output.decode()
    assert text.startswith("lab-ok"), text
    assert "rc=1" in text.split("dns")[0], text
    # The outside connection and the DNS query fail at once, not after the 10 s connect timeout.
    assert took < 8, "took %.1f s:\n%s" % (took, text)
    assert _reject_counts("eng1")["iptables"] > before["iptables"]
    assert out.strip() == "", "traffic left lab host eng1 for outside the lab:\n%s" % out


def test_the_firewall_rules_are_kept_by_a_second_run(eng):
    rules = eng_lab.in_ns("eng3", ["iptables", "-w", "-S"]).stdout
    run, _seconds = eng_lab.up(eng)
    assert run.changed() == {"localhost": 0}, run.output[-3000:]
    assert eng_lab.in_ns("eng3", ["iptables", "-w", "-S"]).stdout == rules


def test_absent_leaves_nothing_even_after_an_engine_was_killed_and_the_lab_comes_back(eng):
    client = docker.DockerClient(base_url=eng_lab.socket_url("eng2"), timeout=60)
    client.containers.run("crosshost-lab/client:1", ["sleep", "100000"], name="orphan", detach=True)
    # A crashed engine: its containerd, shim and container stay behind, in its namespace and cgroups.
    with open(os.path.join(eng_lab.RUN_DIR, "eng2", "docker.pid")) as handle:
        os.kill(int(handle.read()), signal.SIGKILL)
    time.sleep(1)
    assert eng_lab.leftovers()["processes"]

    _run, down_seconds = eng_lab.down(eng)
    left = eng_lab.leftovers()
    assert left == {k: [] for k in left}, left

    again, _seconds = eng_lab.down(eng)
    assert again.changed() == {"localhost": 0}, again.output[-3000:]

    _run, up_seconds = eng_lab.up(eng)
    client = docker.APIClient(base_url=eng_lab.socket_url("eng2"), timeout=60)
    assert "crosshost-lab/client:1" in [t for i in client.images() for t in (i.get("RepoTags") or [])]
    started = time.time()
    with pytest.raises(docker.errors.APIError):
        client.pull("crosshost-lab/missing", tag="1")
    assert time.time() - started < 3
    print("lab_state=absent took %.1f s; present from nothing %.1f s" % (down_seconds, up_seconds))
