"""Source-address rewriting: a consumer whose connections reach the provider from another address.

The provider-side ambassador lets in only its consumers' ambassador_source_address (default: their
advertise address). Here host1's connections to host2 leave through NAT (SNAT to a second address
of host1, as a NAT gateway, a rootless engine or a proxy would rewrite them): the allow-list refuses
them, probe says so and names the address, and ambassador_source_address fixes it.
"""

import json
import subprocess

import pytest

from conftest import ON_THE_CONTROLLER, converge

# On the controller, which sees both engines' sockets (over SSH, host1 would see only its own engine).
PROBE_PLAYBOOK = """
- name: Probe redis from host1, reading host2's ambassador log on failure
  hosts: host1
  gather_facts: false
  tasks:
    - name: Probe redis
      crosshost.ambassador.probe:
        docker_host: "unix://%(host1)s"
        provider_docker:
          host: "unix://%(host2)s"
        image: "{{ ambassador_image }}"
        service: redis
        port: 6379
        send: "PING\\r\\n"
        expect: "+PONG"
      vars: %(on_the_controller)s
"""


def _ns(host, argv):
    subprocess.run(["nsenter", "--net=/run/netns/%s" % host] + argv, check=True, stdout=subprocess.DEVNULL)


@pytest.fixture
def nat(lab):
    """host1's connections to host2's redis port leave from <prefix>.99 (SNAT in host1's namespace)."""
    address = lab.address("host1").rsplit(".", 1)[0] + ".99"
    rule = ["POSTROUTING", "-o", "eth0", "-d", lab.address("host2") + "/32", "-p", "tcp", "--dport", "6379",
            "-j", "SNAT", "--to-source", address]
    _ns("host1", ["ip", "address", "add", address + "/24", "dev", "eth0"])
    try:
        _ns("host1", ["iptables", "-w", "-t", "nat", "-I"] + rule[:1] + ["1"] + rule[1:])
        try:
            yield address
        finally:
            _ns("host1", ["iptables", "-w", "-t", "nat", "-D"] + rule)
    finally:
        _ns("host1", ["ip", "address", "del", address + "/24", "dev", "eth0"])


def _probe(lab, topology, tmp_path):
    playbook = tmp_path / "probe.yml"
    playbook.write_text(PROBE_PLAYBOOK % {"host1": lab.socket("host1"), "host2": lab.socket("host2"),
                                          "on_the_controller": json.dumps(ON_THE_CONTROLLER)})
    run = lab.playbook(topology, str(playbook))
    return run, run.results_of("crosshost.ambassador.probe")["host1"]["result"]


def test_a_rewritten_source_is_refused_by_the_allow_list_named_by_probe_and_fixed_by_ambassador_source_address(
        lab, topology, nat, tmp_path):
    converge(lab, topology)
    run, result = _probe(lab, topology, tmp_path)
    assert run.rc != 0
    assert "refused by the provider's allow-list" in result["msg"], result["msg"]
    assert nat in result["msg"] and "ambassador_source_address" in result["msg"]
    assert result["refused_sources"] == [nat]
    assert "Traceback" not in run.output

    topology.host_vars("host1", ambassador_source_address=nat)
    converge(lab, topology)
    run, result = _probe(lab, topology, tmp_path)
    assert run.rc == 0, run.output[-3000:]
    assert "+PONG" in result["received"] and result["refused_sources"] == []


def test_without_rewriting_probe_reads_the_provider_log_and_finds_no_refusal(lab, topology, tmp_path):
    converge(lab, topology)
    run, result = _probe(lab, topology, tmp_path)
    assert run.rc == 0, run.output[-3000:]
    assert result["refused_sources"] == []
