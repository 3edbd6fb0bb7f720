"""roles/lab/files/lab_host.py: the pure parts, and process handling on real processes."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))))
HELPER = os.path.join(ROOT, "roles", "lab", "files", "lab_host.py")
_spec = importlib.util.spec_from_file_location("lab_host", HELPER)
lab_host = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab_host)

SLEEP = "/usr/bin/sleep"


def test_mountinfo_paths_are_unescaped():
    text = ("36 35 98:0 / /run/netns/eng1 rw - nsfs nsfs rw\n"
            "37 35 98:0 / /var/lib/a\\040b\\134c rw - ext4 /dev/x rw\n")
    assert lab_host.mount_points(text) == ["/run/netns/eng1", "/var/lib/a b\\c"]
    assert lab_host.unescape_mount("x\\04") == "x\\04"


def test_below_lists_deepest_first_and_not_siblings():
    paths = ["/run/xh/eng1", "/run/xh/eng1/exec/netns/a", "/run/xh/eng10/x", "/var/lib/xh/eng1/docker/overlay2/l/m",
             "/var/lib/xh/eng1/docker"]
    assert lab_host.below(paths, ["/run/xh/eng1", "/var/lib/xh/eng1"]) == [
        "/var/lib/xh/eng1/docker/overlay2/l/m", "/run/xh/eng1/exec/netns/a", "/var/lib/xh/eng1/docker", "/run/xh/eng1"]


def test_veth_pairing_needs_both_ends_pointing_at_each_other():
    root = {"ifindex": 7, "link_index": 2, "linkinfo": {"info_kind": "veth"}}
    eth0 = {"ifindex": 2, "link_index": 7}
    assert lab_host.veth_paired(root, eth0)
    assert not lab_host.veth_paired(root, {"ifindex": 2, "link_index": 8})
    assert not lab_host.veth_paired(dict(root, linkinfo={"info_kind": "bridge"}), eth0)
    assert not lab_host.veth_paired(None, eth0)
    assert not lab_host.veth_paired(root, {})


def test_inet_addresses_ignore_ipv6():
    link = {"addr_info": [{"family": "inet", "local": "10.77.14.11", "prefixlen": 24},
                          {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]}
    assert lab_host.inet_addresses(link) == ["10.77.14.11/24"]
    assert lab_host.inet_addresses(None) == []


def test_egress_rules_let_only_the_lab_subnet_through():
    v4 = lab_host.egress_rules("10.77.14.0/24", 4)
    assert v4 == ["-N LAB-EGRESS",
                  "-A LAB-EGRESS -d 10.77.14.0/24 -m comment --comment crosshost-lab -j RETURN",
                  "-A LAB-EGRESS -m comment --comment crosshost-lab -j REJECT --reject-with icmp-port-unreachable"]
    assert lab_host.egress_rules("10.77.14.0/24", 6) == [
        "-N LAB-EGRESS", "-A LAB-EGRESS -m comment --comment crosshost-lab -j REJECT --reject-with icmp6-port-unreachable"]
    # The engine's own traffic (OUTPUT) and its containers' (DOCKER-USER, which Docker never flushes).
    assert [chain for chain, _jump in lab_host.egress_jumps(4)] == ["OUTPUT", "DOCKER-USER"]
    assert all(jump[:2] == ["-o", "eth0"] for _chain, jump in lab_host.egress_jumps(4) + lab_host.egress_jumps(6))
    # Podman: netavark has no DOCKER-USER; the jump is in FORWARD itself.
    assert [chain for chain, _jump in lab_host.egress_jumps(4, "FORWARD")] == ["OUTPUT", "FORWARD"]


def test_cgroup_dirs_of_one_engine_in_every_hierarchy(tmp_path):
    for d in ["pids/crosshost-lab/eng1/abc", "memory/crosshost-lab/eng1", "crosshost-lab/eng1/def",
              "crosshost-lab/eng10/x", "pids/crosshost-lab/eng2", "pids/other/eng1"]:
        (tmp_path / d).mkdir(parents=True)
    found = [os.path.relpath(p, str(tmp_path)) for p in lab_host.cgroup_dirs(str(tmp_path), "/crosshost-lab/eng1")]
    assert sorted(found) == sorted(["pids/crosshost-lab/eng1/abc", "pids/crosshost-lab/eng1", "memory/crosshost-lab/eng1",
                                    "crosshost-lab/eng1/def", "crosshost-lab/eng1"])
    # Children before their parents: the order rmdir needs.
    assert found.index("pids/crosshost-lab/eng1/abc") < found.index("pids/crosshost-lab/eng1")


def test_multiarch_names_the_directory_of_this_machines_libraries():
    assert os.path.isdir(os.path.join("/usr/lib", lab_host.multiarch()))


def _pidfile(tmp_path, pid):
    path = tmp_path / "engine.pid"
    path.write_text("%d\n" % pid)
    return str(path)


def test_an_engine_is_recognised_by_its_executable_not_its_pid(tmp_path):
    proc = subprocess.Popen([SLEEP, "60"])
    try:
        pidfile = _pidfile(tmp_path, proc.pid)
        assert lab_host.running_as(lab_host.read_pid(pidfile), SLEEP)
        assert not lab_host.running_as(lab_host.read_pid(pidfile), "/usr/sbin/dockerd")
        # Another executable under the pid: not stopped.
        assert lab_host.stop_engine(pidfile, "/usr/sbin/dockerd", 5) is False
        assert proc.poll() is None
        assert lab_host.stop_engine(pidfile, SLEEP, 5) is True
        assert proc.wait(5) == -signal.SIGTERM
        assert lab_host.stop_engine(pidfile, SLEEP, 5) is False
    finally:
        proc.kill()
    assert lab_host.read_pid(str(tmp_path / "missing.pid")) is None


def test_an_engine_of_another_kind_is_found_through_the_marker_and_stopped(tmp_path):
    # A host moved from one engine to another (lab_engines): its marker still names the old executable.
    state = tmp_path / "state"
    state.mkdir()
    spec = {"dockerd": "/usr/sbin/dockerd", "state_dir": str(state)}
    assert lab_host.engine_executables(spec) == ["/usr/sbin/dockerd"]
    (state / lab_host.MARKER).write_text("not json")
    assert lab_host.engine_executables(spec) == ["/usr/sbin/dockerd"]
    (state / lab_host.MARKER).write_text(json.dumps({"dockerd": [SLEEP, "--flag"]}))
    assert lab_host.engine_executables(spec) == ["/usr/sbin/dockerd", SLEEP]
    proc = subprocess.Popen([SLEEP, "60"])
    try:
        pidfile = _pidfile(tmp_path, proc.pid)
        assert not lab_host.running_as_any(proc.pid, ["/usr/sbin/dockerd"])
        assert lab_host.running_as_any(proc.pid, lab_host.engine_executables(spec))
        assert lab_host.stop_engine(pidfile, lab_host.engine_executables(spec), 5) is True
        assert proc.wait(5) == -signal.SIGTERM
    finally:
        proc.kill()


def test_a_process_ignoring_sigterm_gets_sigkill_after_the_grace(tmp_path):
    ready = tmp_path / "ready"
    code = "import signal,time,pathlib; signal.signal(signal.SIGTERM, signal.SIG_IGN); pathlib.Path(%r).touch(); time.sleep(60)" % str(ready)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.time() + 10
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.05)
        started = time.time()
        assert lab_host.end_processes([proc.pid], 1) == [proc.pid]
        assert proc.wait(5) == -signal.SIGKILL
        assert 1 <= time.time() - started < 5
    finally:
        proc.kill()


def test_start_engine_detaches_and_appends_to_the_log(tmp_path):
    log = tmp_path / "engine.log"
    log.write_text("earlier\n")
    pid = lab_host.start_engine(["/bin/sh", "-c", "echo started; echo oops >&2; exec sleep 60"], str(log),
                                {"PATH": "/usr/bin:/bin"})
    try:
        deadline = time.time() + 10
        while "oops" not in log.read_text() and time.time() < deadline:
            time.sleep(0.05)
        assert log.read_text().startswith("earlier\n")
        assert "started" in log.read_text() and "oops" in log.read_text()
        assert os.getsid(pid) == pid  # its own session: it outlives the task that started it
    finally:
        os.kill(pid, signal.SIGKILL)
        lab_host.wait_gone([pid], 5)


def _main(args, capsys):
    code = lab_host.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_usage_and_incomplete_specs_are_refused_with_a_sentence(capsys):
    assert _main(["frobnicate", "{}"], capsys)[0] == 2
    code, _out, err = _main(["absent", json.dumps({"name": "x"})], capsys)
    assert code == 1 and "the spec lacks netns_dir" in err
    code, _out, err = _main(["present", "not json"], capsys)
    assert code == 1 and err.startswith("lab_host.py present: ")


def test_arch_prints_json(capsys):
    code, out, _err = _main(["arch"], capsys)
    assert code == 0 and json.loads(out)["multiarch"] == lab_host.multiarch()
    assert json.loads(out)["nofile"] == lab_host.hard_limits()["nofile"] > 0


def test_the_process_limit_given_to_podmans_containers_is_at_most_the_kernels_pid_max(tmp_path):
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NPROC)[1]
    low = tmp_path / "pid_max"
    low.write_text("100\n")
    assert lab_host.hard_limits(str(low))["nproc"] == 100
    high = tmp_path / "pid_max_high"
    high.write_text("%d\n" % (2 ** 40))
    assert lab_host.hard_limits(str(high))["nproc"] == hard
    assert lab_host.hard_limits(str(tmp_path / "none"))["nproc"] == hard


def test_podmans_containers_are_removed_with_the_services_own_global_options():
    argv = ["/usr/bin/podman", "--root=/s/podman/storage", "--runroot=/r/podman", "system", "service", "--time=0",
            "unix:///r/docker.sock"]
    assert lab_host.podman_remove_all(argv) == ["/usr/bin/podman", "--root=/s/podman/storage", "--runroot=/r/podman",
                                                "rm", "--all", "--force", "--time=2"]
    assert lab_host.podman_remove_all(["/usr/sbin/dockerd", "--data-root=/s"]) is None
    assert lab_host.podman_remove_all(None) is None


def test_absent_of_a_host_that_is_not_there_changes_nothing(tmp_path, capsys):
    spec = {"name": "xhut-none", "netns_dir": str(tmp_path / "netns"), "veth": "xhv-utnone",
            "state_dir": str(tmp_path / "state"), "run_dir": str(tmp_path / "run"), "pidfile": str(tmp_path / "run" / "p"),
            "dockerd": "/usr/sbin/dockerd", "cgroup_parent": "/crosshost-lab-unit/xhut-none", "timeout": 5}
    code, out, err = _main(["absent", json.dumps(spec)], capsys)
    assert code == 0, err
    assert json.loads(out) == {"changed": False, "actions": []}


def _host_fs(tmp_path):
    """A host's file system view in tmp_path: its run and state directories, one per-host directory over a machine one."""
    run_dir, state_dir = tmp_path / "run" / "h1", tmp_path / "state" / "h1"
    machine_etc, own_etc = tmp_path / "etc-machine", state_dir / "etc"
    for path in (run_dir, machine_etc, own_etc):
        path.mkdir(parents=True)
    (machine_etc / "machine").write_text("machine's\n")
    (own_etc / "mine").write_text("h1's\n")
    (run_dir / "docker.sock").write_text("")
    spec = {"name": "h1", "netns_dir": "/run/netns", "state_dir": str(state_dir), "run_dir": str(run_dir),
            "fs": {"mntns": str(run_dir / "ns" / "mnt"), "binds": {str(machine_etc): str(own_etc)},
                   "docker_sock": str(run_dir / "docker.sock")}}
    return spec, machine_etc


def test_the_host_view_has_its_own_run_and_etc_and_the_machine_keeps_its_own(tmp_path):
    spec, machine_etc = _host_fs(tmp_path)
    keep = tmp_path / "keep"
    keep.mkdir()
    script = lab_host.host_view_script(spec["run_dir"], spec["fs"]["binds"], spec["fs"]["docker_sock"], str(keep))
    look = "ls /run; readlink /var/run/docker.sock; ls %s; ls %s" % (machine_etc, spec["run_dir"])
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script + look],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, check=False)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.split()
    # /run is the host's own: its sshd's directory, a lock directory and the link to its engine's
    # socket (and util-linux's own mount/ when mount ran); the machine's /run is not there.
    assert set(lines[:-3]) - {"mount"} == {"docker.sock", "lock", "sshd"}
    assert lines[-3] == spec["fs"]["docker_sock"]
    assert lines[-2:] == ["mine", "docker.sock"]
    # The machine's view is untouched.
    assert os.listdir(str(machine_etc)) == ["machine"]


def test_a_host_view_persists_is_recognised_and_goes_with_its_mount(tmp_path):
    spec, machine_etc = _host_fs(tmp_path)
    host = lab_host.Host(spec, check=False)
    assert host.host_view() is True
    try:
        assert host.mntns_mounted() and host.host_view() is False
        inside = subprocess.run(["nsenter", "--mount=" + spec["fs"]["mntns"], "sh", "-c",
                                 "readlink /run/docker.sock; cat %s/mine" % machine_etc],
                                stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout.split()
        assert inside == [spec["fs"]["docker_sock"], "h1's"]
        assert not host.in_host_view(os.getpid())
        proc = subprocess.Popen(["nsenter", "--mount=" + spec["fs"]["mntns"], SLEEP, "30"])
        try:
            time.sleep(0.3)
            assert host.in_host_view(proc.pid)
        finally:
            proc.kill()
            proc.wait()
    finally:
        with open("/proc/self/mountinfo") as handle:
            for mount in lab_host.below(lab_host.mount_points(handle.read()), [spec["run_dir"]]):
                subprocess.run(["umount", "--lazy", mount], check=True)
    assert not host.mntns_mounted()


def _cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        return handle.read()


def test_processes_naming_a_hosts_directories_are_found_except_this_run(tmp_path):
    state = str(tmp_path / "state" / "eng2")
    # An sshd whose namespace went: it is found by the path its command line names.
    wait = [sys.executable, "-c", "import time; time.sleep(60)"]
    stray = subprocess.Popen(wait + [state + "/ssh/sshd_config"])
    other = subprocess.Popen(wait + [str(tmp_path / "state" / "eng20") + "/x"])
    # A run of lab_host.py itself names the host's directories in its spec: it is not a leftover.
    own = subprocess.Popen(wait + [HELPER, "absent", '{"state_dir": "%s"}' % state])
    try:
        for proc in (stray, other, own):  # until exec: before it, the child's command line is pytest's
            deadline = time.time() + 10
            while time.time() < deadline and b"time.sleep" not in _cmdline(proc.pid):
                time.sleep(0.01)
        found = lab_host.processes_naming([state])
        assert stray.pid in found and other.pid not in found and own.pid not in found
    finally:
        for proc in (stray, other, own):
            proc.kill()
            proc.wait()


def test_a_hosts_mac_address_is_made_of_its_ip_address_so_it_survives_being_made_again():
    assert lab_host.mac_of("10.77.20.14") == "02:00:0a:4d:14:0e"
    assert lab_host.mac_of("10.77.0.11") != lab_host.mac_of("10.77.0.12")
