"""Mutual TLS between ambassadors on the lab: no plaintext on the wire, no way in without a certificate of the CA."""

import os
import subprocess
import sys
import time

import pytest

from conftest import converge, exec_ok

MARKER = "plaintext-marker-4b1d"

TLS_CLIENT = r"""
import socket, ssl, sys
address, ca, cert, key = sys.argv[1:5]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(ca)
ctx.check_hostname = False
if cert:
    ctx.load_cert_chain(cert, key)
try:
    with socket.create_connection((address, 6379), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="host2") as conn:
            conn.sendall(b"PING\r\n")
            print(conn.recv(100).decode() or "closed")
except (OSError, ssl.SSLError) as exc:
    print("refused: %s" % type(exc).__name__)
"""


def captured(lab, host, action):
    """Bytes seen on host's eth0 for tcp port 6379 while action() runs."""
    pcap = os.path.join(str(lab.tmpdir), "capture-%d.pcap" % time.time_ns())
    tcpdump = lab.in_namespace(host, ["tcpdump", "-i", "eth0", "-U", "-s", "0", "-w", pcap, "tcp", "port", "6379"])
    try:
        time.sleep(1.0)
        action()
        time.sleep(1.0)
    finally:
        tcpdump.terminate()
        tcpdump.wait(10)
    with open(pcap, "rb") as handle:
        return handle.read()


@pytest.fixture
def tls_topology(topology, tmp_path):
    topology.vars["ambassador_tls"] = True
    topology.vars["ambassador_tls_pki_dir"] = str(tmp_path / "pki")
    return topology.save()


def test_without_tls_the_capture_sees_the_plaintext(lab, topology, consumer):
    """The control: the capture does see redis commands when ambassadors speak plain TCP."""
    wire = captured(lab, "host2", lambda: exec_ok(consumer, ["redis-cli", "-h", "redis", "SET", "k", MARKER]))
    assert MARKER.encode() in wire


def test_with_tls_nothing_on_the_wire_is_plaintext(lab, tls_topology):
    run = converge(lab, tls_topology)
    assert ("recreate", "echo_ambassador") in run.actions()["host3"]  # echo's ambassadors speak TLS too
    consumer = lab.start_consumer("host1", "consumer")
    try:
        wire = captured(lab, "host2", lambda: exec_ok(consumer, ["redis-cli", "-h", "redis", "SET", "k", MARKER]))
        assert len(wire) > 200, "the capture saw no traffic"
        assert MARKER.encode() not in wire
        assert exec_ok(consumer, ["redis-cli", "-h", "redis", "GET", "k"]) == MARKER
        # The TLS files are the ambassadors' user's alone, and the run is idempotent.
        # Host2's own /etc, not this machine's (which is only its mount point).
        key = os.stat(lab.host_etc("host2", "/etc/crosshost-ambassador/tls/host2/key.pem"))
        assert (key.st_uid, oct(key.st_mode & 0o777)) == (65534, "0o400")
        assert converge(lab, tls_topology).changed() == {"host1": 0, "host2": 0, "host3": 0}
    finally:
        consumer.remove(force=True)


def test_with_tls_a_peer_without_a_certificate_of_the_ca_is_refused(lab, tls_topology, tmp_path):
    converge(lab, tls_topology)
    pki = tls_topology.vars["ambassador_tls_pki_dir"]
    ca = os.path.join(pki, "ca.pem")
    # A certificate from another CA, for the same name.
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(other / "key.pem"), "-out", str(other / "cert.pem"), "-days", "2",
                    "-subj", "/CN=host1"], check=True, capture_output=True)
    own = os.path.join(pki, "hosts", "host1")

    def connect(cert, key):
        # From host1's namespace: an address the provider's allow-list admits, so only TLS decides.
        out = subprocess.run(["nsenter", "--net=/run/netns/host1", sys.executable, "-c", TLS_CLIENT,
                              lab.address("host2"), ca, cert, key], capture_output=True, text=True, timeout=30, check=False)
        return out.stdout.strip()

    assert connect("", "") != "+PONG"
    assert connect(str(other / "cert.pem"), str(other / "key.pem")) != "+PONG"
    assert connect(os.path.join(own, "cert.pem"), os.path.join(own, "key.pem")) == "+PONG"


def test_the_picture_after_a_tls_run_shows_no_change(lab, tls_topology, tmp_path):
    """graph.yml asks the engines in check mode with the same TLS fingerprints as site.yml: once
    converged, nothing is drawn as created or recreated."""
    converge(lab, tls_topology)
    out = tmp_path / "picture"
    graph = lab.playbook(tls_topology, "playbooks/graph.yml", "-e", "ambassador_graph_dir=%s" % out)
    assert graph.rc == 0, graph.output[-6000:]
    dot = (out / "topology.dot").read_text()
    assert "redis_ambassador" in dot
    assert "[recreate]" not in dot and "[create]" not in dot, dot
