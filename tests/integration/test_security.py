"""Least exposure on the lab: published only on the advertise address, only consumers let in, hardened ambassadors."""

import socket
import time

from conftest import converge, exec_ok


def talk_from_the_machine(address, port, payload, timeout=3):
    """Connect from the machine's own namespace (10.77.0.1 on the lab bridge): a host that consumes nothing."""
    with socket.create_connection((address, port), timeout=timeout) as conn:
        conn.sendall(payload)
        conn.settimeout(timeout)
        try:
            return conn.recv(100)
        except (ConnectionResetError, socket.timeout):
            return b""


def test_provider_ambassadors_let_in_only_their_consumers(lab, topology):
    converge(lab, topology)
    # redis (host2) has one consumer, host1: checked by socat's range=.
    assert talk_from_the_machine(lab.address("host2"), 6379, b"PING\r\n") == b""
    outsider = lab.start_consumer("host3", "outsider")
    try:
        code, out = outsider.exec_run(["redis-cli", "-h", lab.address("host2"), "PING"])
        assert out.strip() != b"PONG", "host3 does not consume redis, yet reached it"
    finally:
        outsider.remove(force=True)
    insider = lab.start_consumer("host1", "insider")
    try:
        assert exec_ok(insider, ["redis-cli", "-h", lab.address("host2"), "PING"]) == "PONG"
    finally:
        insider.remove(force=True)
    # echo (host1) has two consumers, host2 and host3: checked on the peer address per connection.
    assert talk_from_the_machine(lab.address("host1"), 7777, b"hello\n") == b""
    probe = lab.start_consumer("host3", "echo-probe")
    try:
        assert exec_ok(probe, ["sh", "-c", "echo hello | socat -t 2 - TCP:%s:7777" % lab.address("host1")]) == "hello"
    finally:
        probe.remove(force=True)


def test_ports_are_published_on_the_advertise_address_only(lab, topology):
    converge(lab, topology)
    for host in lab.hosts:
        for container in lab.client(host).containers.list():
            for bindings in (container.attrs["HostConfig"]["PortBindings"] or {}).values():
                for binding in bindings:
                    assert binding["HostIp"] == lab.address(host), (host, container.name, binding)


def test_ambassadors_run_hardened(lab, topology):
    converge(lab, topology)
    checked = 0
    for host in lab.hosts:
        for container in lab.client(host).containers.list(filters={"label": "crosshost.ambassador.role=ambassador"}):
            config, host_config = container.attrs["Config"], container.attrs["HostConfig"]
            assert config["User"] == "65534:65534"
            assert host_config["ReadonlyRootfs"] is True
            assert host_config["CapDrop"] == ["ALL"] and not host_config["CapAdd"]
            assert host_config["SecurityOpt"] == ["no-new-privileges:true"]
            assert host_config["Memory"] > 0 and host_config["PidsLimit"] > 0
            assert host_config["Privileged"] is False
            # The socat processes really run as nobody.
            top = container.top(ps_args="-o pid,uid,comm")
            uid = top["Titles"].index("UID")
            assert top["Processes"] and all(row[uid] == "65534" for row in top["Processes"]), top
            checked += 1
    assert checked == 5


def test_a_published_port_held_by_a_foreign_container_fails_that_host_and_touches_nothing(lab, topology):
    redis = topology.drop("redis")
    converge(lab, topology)
    foreign = lab.client("host2").containers.run(
        lab.vars["lab_client_image"], ["sleep", "100000"], name="someones-proxy", detach=True,
        ports={"6379/tcp": (lab.address("host2"), 6379)})
    try:
        before = lab.snapshot()
        run = lab.site(topology.restore("redis", redis))
        assert run.failed_hosts() == ["host2"]
        msg = run.results_of("crosshost.ambassador.apply")["host2"]["result"]["msg"]
        assert "port %s:6379/tcp, wanted by redis_ambassador, is published by container someones-proxy" \
            % lab.address("host2") in msg and "Fix:" in msg
        assert lab.snapshot()["host2"] == before["host2"]
    finally:
        foreign.remove(force=True)
    converge(lab, topology)


def test_a_published_port_held_by_a_process_fails_that_host_with_the_fix(lab, topology):
    redis = topology.drop("redis")
    converge(lab, topology)
    listener = lab.in_namespace("host2", ["socat", "TCP-LISTEN:6379,bind=%s,reuseaddr,fork" % lab.address("host2"),
                                          "SYSTEM:echo someone-else"])
    try:
        time.sleep(0.5)
        run = lab.site(topology.restore("redis", redis))
        assert run.failed_hosts() == ["host2"]
        msg = run.results_of("crosshost.ambassador.apply")["host2"]["result"]["msg"]
        assert "redis_ambassador" in msg and "address already in use" in msg
        assert "Fix: stop what holds that port" in msg
        assert "Traceback" not in run.output
        assert listener.poll() is None, "the foreign process was disturbed"
        assert "redis_ambassador" not in lab.owned("host2"), "a half-made ambassador was left behind"
    finally:
        listener.terminate()
        listener.wait(10)
    assert converge(lab, topology).changed()["host2"] == 1
