"""Each data plane carries real traffic across the lab: redis (TCP) and echo, through both ambassadors."""

import pytest

from conftest import converge, exec_ok


@pytest.mark.parametrize("dataplane", ["socat", "kernel"])
def test_each_data_plane_carries_traffic_between_hosts(lab, topology, dataplane):
    for service in topology.services.values():
        service["dataplane"] = dataplane
    converge(lab, topology.save())

    consumer = lab.start_consumer("host1", "dataplane-probe")
    try:
        key = "via-%s" % dataplane
        assert exec_ok(consumer, ["redis-cli", "-h", "redis", "SET", key, dataplane]) == "OK"
        assert exec_ok(consumer, ["redis-cli", "-h", "redis", "GET", key]) == dataplane
        # Many connections at once: no connection is refused or stalled.
        assert "requests per second" in exec_ok(
            consumer, ["timeout", "60", "redis-benchmark", "-h", "redis", "-c", "50", "-n", "2000", "-t", "ping", "-q"])
    finally:
        consumer.remove(force=True)
    assert lab.client("host2").containers.get("redis").exec_run(["redis-cli", "GET", key]).output.strip() \
        == dataplane.encode()
    probe = lab.start_consumer("host3", "dataplane-probe")
    try:
        assert exec_ok(probe, ["sh", "-c", "echo hi-%s | socat -t 2 - TCP:echo:7777" % dataplane]) == "hi-" + dataplane
    finally:
        probe.remove(force=True)

    for host, name in (("host1", "redis_ambassador"), ("host2", "redis_ambassador")):
        container = lab.client(host).containers.get(name)
        config = container.attrs["HostConfig"]
        if dataplane == "kernel":
            # The sysctl in effect in the container; Podman 4.3's inspect reports no HostConfig.Sysctls.
            assert config["CapAdd"] == ["NET_ADMIN"]
            assert container.exec_run(["cat", "/proc/sys/net/ipv4/ip_forward"]).output.strip() == b"1"
            assert config.get("Sysctls") is None or config["Sysctls"]["net.ipv4.ip_forward"] == "1"
        else:
            assert not config.get("CapAdd") and not config.get("Sysctls")
