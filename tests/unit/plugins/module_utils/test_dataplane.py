"""The data planes' processes, on plain data (no Docker, no Ansible)."""

import os
import subprocess

import pytest

from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import (
    ALLOW_FILE, ALLOW_LOG, SOCAT_BACKLOG, addresses_text, adopted, allow_change, allow_files, allowed_script,
    ambassador_process, kernel_rules, kernel_script, refused_sources, replaced_watch, socat_forward)


def test_socat_listens_with_a_deep_backlog_and_without_nagle():
    p = ambassador_process("socat", "tcp", [(6379, 16379)], "10.0.0.2")
    assert p["entrypoint"] == ["socat"] and p["init"] is False
    assert p["command"] == ["-b", "65536", "TCP-LISTEN:6379,fork,reuseaddr,backlog=%d,nodelay" % SOCAT_BACKLOG,
                            "TCP:10.0.0.2:16379,nodelay"]
    assert p["cap_add"] == [] and p["sysctls"] == {}


def test_socat_udp_and_ipv6_target():
    p = ambassador_process("socat", "udp", [(53, 1053)], "fd00::2")
    assert p["command"] == ["-b", "65536", "UDP-RECVFROM:53,fork,reuseaddr", "UDP-SENDTO:[fd00::2]:1053"]


def test_kernel_rules_dnat_each_port_and_masquerade_towards_the_target():
    assert kernel_rules("tcp", [(6379, 16379), (26379, 26379)]).splitlines() == [
        "*nat",
        ":XHA_PRE - [0:0]",
        ":XHA_POST - [0:0]",
        "-A XHA_PRE -p tcp --dport 6379 -j DNAT --to-destination $ip:16379",
        "-A XHA_PRE -p tcp --dport 26379 -j DNAT --to-destination $ip:26379",
        "-A XHA_POST -p tcp -d $ip --dport 16379 -j MASQUERADE",
        "-A XHA_POST -p tcp -d $ip --dport 26379 -j MASQUERADE",
        "COMMIT",
    ]


def test_kernel_process_needs_net_admin_and_forwarding():
    p = ambassador_process("kernel", "tcp", [(6379, 6379)], "redis")
    assert p["cap_add"] == ["NET_ADMIN"]
    assert p["sysctls"]["net.ipv4.ip_forward"] == "1"
    assert p["entrypoint"] == ["/bin/sh", "-c"] and p["init"] is True
    assert p["command"] == [kernel_script("tcp", [(6379, 6379)], "redis")]


def test_kernel_script_is_valid_shell():
    script = kernel_script("udp", [(53, 1053)], "10.0.0.2")
    assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0


def test_a_kernel_allow_list_is_a_delivered_file_and_socat_keeps_its_own():
    p = ambassador_process("kernel", "tcp", [(6379, 6379)], "redis", allow=["10.0.0.3", "10.0.0.2"])
    assert p["command"] == [allowed_script("tcp", [(6379, 6379)], "redis")]
    assert allow_files("kernel", ["10.0.0.3", "10.0.0.2"]) == {ALLOW_FILE: "10.0.0.2 10.0.0.3 end\n"}
    assert allow_files("kernel", []) == {} and allow_files("socat", ["10.0.0.2"]) == {}
    assert allow_change("10.0.0.2 10.0.0.3 end\n", "10.0.0.3 10.0.0.4 end\n") == (["10.0.0.4"], ["10.0.0.2"])
    assert allow_change(None, "10.0.0.2 end\n") == (["10.0.0.2"], [])


# Stand-ins for what the allow-list program calls, so that it runs here: the target resolves to 10.9.9.9,
# iptables-restore appends its input to a file, and sleep (one per round) plays the next step of a scenario.
FAKES = {
    "iptables": "#!/bin/sh\nexit 0\n",
    "iptables-restore": "#!/bin/sh\n{ cat; echo ---; } >> \"$FAKE_DIR/restored\"\n",
    "getent": "#!/bin/sh\necho '10.9.9.9 STREAM redis'\n",
    "sleep": "#!/bin/sh\nn=$(cat \"$FAKE_DIR/rounds\" 2>/dev/null || echo 0); n=$((n + 1)); echo $n > \"$FAKE_DIR/rounds\"\n"
             "[ -x \"$FAKE_DIR/bin/round$n\" ] && \"$FAKE_DIR/bin/round$n\"\n[ $n -ge 6 ] && kill $PPID\nexit 0\n",
}


def test_a_provider_side_kernel_ambassador_takes_each_new_allow_list_from_its_file(tmp_path):
    fakes = tmp_path / "bin"
    fakes.mkdir()
    for name, text in dict(FAKES, round2="#!/bin/sh\nprintf '10.0.0.2 10.0.0.' > %(f)s\n",  # half written
                           round3="#!/bin/sh\nprintf '%(t)s' > %(f)s\n").items():
        (fakes / name).write_text(text % {"f": tmp_path / "allow", "t": addresses_text(["10.0.0.2", "10.0.0.4"])}
                                  if name.startswith("round") else text)
        (fakes / name).chmod(0o755)
    (tmp_path / "allow").write_text(addresses_text(["10.0.0.2", "10.0.0.3"]))
    script = allowed_script("tcp", [(6379, 6379)], "redis").replace(ALLOW_FILE, str(tmp_path / "allow"))
    run = subprocess.run(["sh", "-c", script], env=dict(os.environ, PATH="%s:%s" % (fakes, os.environ["PATH"]),
                                                        FAKE_DIR=str(tmp_path)), capture_output=True, text=True,
                         timeout=30, check=False)
    assert run.stdout.splitlines() == [
        "crosshost.ambassador: forwarding tcp 6379->6379 to redis (10.9.9.9)",
        ALLOW_LOG + "10.0.0.2 10.0.0.3",
        # The half-written file is read as nothing new; the whole one is taken at the next round.
        ALLOW_LOG + "10.0.0.2 10.0.0.4",
    ]
    assert adopted(run.stdout, ALLOW_FILE) == ["10.0.0.2", "10.0.0.4"]
    first, second = (tmp_path / "restored").read_text().split("---\n")[1:3]  # (the first: the chains, hooked in)
    dnat = "-A XHA_PRE -s %s/32 -p tcp --dport 6379 -j DNAT --to-destination 10.9.9.9:6379"
    assert [line for line in first.splitlines() if "DNAT" in line] == [dnat % "10.0.0.2", dnat % "10.0.0.3"]
    assert [line for line in second.splitlines() if "DNAT" in line] == [dnat % "10.0.0.2", dnat % "10.0.0.4"]
    assert "-A XHA_POST -p tcp -d 10.9.9.9 --dport 6379 -j MASQUERADE" in second


def test_unknown_data_plane_is_an_error():
    with pytest.raises(ValueError):
        ambassador_process("haproxy", "tcp", [(80, 80)], "web")


def test_several_peers_hand_a_plain_tcp_connection_to_the_checked_socat_itself():
    tcp = ambassador_process("socat", "tcp", [(80, 80)], "web", allow=["10.0.0.3", "10.0.0.2"])["command"]
    assert tcp[-1].startswith("SYSTEM:test $SOCAT_PEERADDR = 10.0.0.2 -o $SOCAT_PEERADDR = 10.0.0.3 && exec socat")
    assert tcp[-1].endswith(",nofork")
    # UDP datagrams and TLS records need the listener's socat between the peer and the check.
    udp = ambassador_process("socat", "udp", [(53, 53)], "dns", allow=["10.0.0.3", "10.0.0.2"])["command"]
    tls = ambassador_process("socat", "tcp", [(80, 80)], "web", allow=["10.0.0.3", "10.0.0.2"], tls_role="server")["command"]
    assert not udp[-1].endswith(",nofork") and not tls[-1].endswith(",nofork")


def test_the_watch_of_a_replaced_ambassador_is_valid_shell_naming_its_successor():
    script = replaced_watch("redis_ambassador")
    assert subprocess.run(["sh", "-n", "-c", script], check=False).returncode == 0
    assert script.startswith("name='redis_ambassador'\n") and "kill -TERM 1" in script


def test_refused_sources_are_read_from_socat_and_shell_refusals():
    log = ("2026/12/05 07:49:40 socat[7] W refusing connection from AF=2 10.77.16.99:47878 due to range option\n"
           "2026/12/05 07:49:41 socat[7] W refusing connection from AF=10 [fd00::9]:4711 due to range option\n"
           "W refusing connection from 10.77.16.98:5000 due to the allow-list\n"
           "2026/12/05 07:49:42 socat[7] W refusing connection from AF=2 10.77.16.99:47880 due to range option\n"
           "2026/12/05 07:49:44 socat[7] W exiting on signal 15\n")
    assert refused_sources(log) == ["10.77.16.99", "fd00::9", "10.77.16.98"]
    assert refused_sources("") == []


def test_the_shell_check_of_several_peers_logs_a_refusal_as_refused_sources_reads_it():
    listen, connect = socat_forward("tcp", 7, "echo", 7, allow=["10.0.0.2", "10.0.0.3"])
    script = connect[len("SYSTEM:"):-len(",nofork")].replace("\\", "")
    env = dict(os.environ, SOCAT_PEERADDR="10.0.0.9", SOCAT_PEERPORT="4242")
    proc = subprocess.run(["/bin/sh", "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, check=False)
    assert refused_sources(proc.stderr) == ["10.0.0.9"]
    assert "range=" not in listen
