"""Moves that never strand a service: a new host that cannot take it, two runs at once, a run
killed while it holds the lock, partial runs, and services that keep data."""

import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import yaml

from conftest import LAB_INVENTORY, OWNER_LABEL, ROOT, VENV_BIN, converge, exec_ok, wait_for
from test_faults import RECONNECTING_CLIENT

LOCK = "crosshost-ambassador-lock"
TAKE_FIRST = "Take this run's lock on the first engine it changes, first"
TAKE = "Take this run's lock on every engine it changes (another run's lock is waited for)"
DECIDE = "Decide what this host needs, changing nothing yet"
STOP = "Stop the services that move stop-first, on the host they leave"
MAKE = "Reconcile this host's ambassadors and service containers"
SWITCH = "Switch this host's changed ambassadors over"
BREAK = "Remove what this host no longer runs"
RELEASE = "Release this run's lock"


def running(lab, name):
    """The lab hosts where the collection's container `name` runs."""
    found = []
    for host in lab.hosts:
        try:
            containers = lab.client(host).containers.list(filters={"name": "^%s$" % name, "label": OWNER_LABEL})
        except Exception:  # an engine the test stopped
            continue
        found += [host for c in containers if c.status == "running"]
    return sorted(found)


def lock_taken(run):
    """The results of the steps that took the run's lock (the first engine's, then every engine's)."""
    return [r["result"] for r in run.results if r["action"] == "crosshost.ambassador.lock"
            and r["task"].endswith((TAKE_FIRST, TAKE)) and r["status"] != "skipped"]


def target_of(lab, host):
    return lab.client(host).containers.get("redis_ambassador").attrs["Config"]["Cmd"][-1]


def move_redis(topology, host):
    topology.services["redis"]["host"] = host
    return topology.save()


class Blocker(object):
    """A way for host3 to be unable to take redis, and the way back."""

    def __init__(self, lab, how):
        self.lab, self.how, self.handle = lab, how, None

    def __enter__(self):
        if self.how == "engine stopped":
            self.lab.stop_engine("host3")
        elif self.how == "foreign container named redis":
            self.handle = self.lab.client("host3").containers.run(
                self.lab.vars["lab_client_image"], ["sleep", "100000"], name="redis", detach=True)
        else:
            self.handle = self.lab.in_namespace("host3", ["socat", "TCP-LISTEN:6379,bind=%s,reuseaddr,fork"
                                                          % self.lab.address("host3"), "SYSTEM:echo someone-else"])
            time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        if self.how == "engine stopped":
            self.lab.up()
        elif self.how == "foreign container named redis":
            self.handle.remove(force=True)
        else:
            self.handle.terminate()
            self.handle.wait(10)


@pytest.mark.parametrize("how", ["engine stopped", "foreign container named redis", "port held by a process"])
def test_a_move_to_a_host_that_cannot_take_it_is_called_off_and_consumers_keep_the_old_place(lab, topology, consumer,
                                                                                             how):
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "SET", "kept", how]) == "OK"
    host2 = lab.address("host2")
    with Blocker(lab, how):
        run = lab.site(move_redis(topology, "host3"))
        assert run.rc != 0 and run.failed_hosts() == ["host3"], run.output[-3000:]
        assert "called off the move of redis, because host3 failed" in run.output
        assert "Traceback" not in run.output
        # Nothing switched and nothing let go: redis runs on host2 alone, with its data, and is reached there.
        assert running(lab, "redis") == ["host2"]
        assert target_of(lab, "host1") == "TCP:%s:6379,nodelay" % host2
        assert exec_ok(consumer, ["redis-cli", "-h", "redis", "GET", "kept"]) == how
        if how != "engine stopped":
            # Nothing half-made is left on host3.
            assert "redis" not in lab.owned("host3") and "redis_ambassador" not in lab.owned("host3")
    # Once host3 can take it, the move goes through.
    again = converge(lab, topology)
    assert running(lab, "redis") == ["host3"] and target_of(lab, "host1") == "TCP:%s:6379,nodelay" % lab.address("host3")
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "PING"]) == "PONG"
    assert again.rc == 0


def test_a_failing_new_host_costs_consumers_no_request(lab, topology, capsys):
    """make_before_break, the new host failing: a request every 10 ms through the ambassador never fails."""
    topology.services["redis"]["move"] = "make_before_break"
    converge(lab, topology.save())
    client = lab.client("host1").containers.run(lab.vars["lab_client_image"], ["sh", "-c", RECONNECTING_CLIENT],
                                                name="reconnecting-client", network="ambassador", detach=True)
    try:
        with Blocker(lab, "port held by a process"):
            time.sleep(1)
            run = lab.site(move_redis(topology, "host3"))
            assert run.failed_hosts() == ["host3"]
            time.sleep(1)
        samples = [line.split(" ") for line in client.logs().decode().splitlines()]
        failed = [stamp for stamp, result in samples if result != "ok"]
        with capsys.disabled():
            print("\n  move of redis to a failing host3: %d failed of %d requests" % (len(failed), len(samples)))
        assert len(samples) > 100 and failed == []
    finally:
        client.remove(force=True)
    move_redis(topology, "host2")


def test_a_service_with_volumes_stops_before_its_new_host_starts_it_and_names_the_data_left(lab, topology, consumer):
    predicted = lab.site(move_redis(topology, "host3"), "--check")
    assert predicted.rc == 0
    assert "service redis would leave its data: volume(s) redis-data stay on this host" in predicted.output
    assert running(lab, "redis") == ["host2"]

    moved = converge(lab, topology)
    assert "service redis leaves its data: volume(s) redis-data stay on this host" in moved.output
    steps = moved.steps()
    # host2 stops redis before host3 starts it (never two writers), and removes it last.
    assert steps["host2"][1] == (STOP, [("stop", "redis")])
    assert (MAKE, [("create", "redis"), ("create", "redis_ambassador")]) in steps["host3"]
    assert (BREAK, [("remove", "redis"), ("remove", "redis_ambassador")]) in steps["host2"]
    assert running(lab, "redis") == ["host3"]
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "PING"]) == "PONG"
    assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}


def test_a_move_leaves_the_hosts_it_does_not_concern_alone(lab, topology, consumer):
    """redis moves from host2 to host1 (its only consumer): host3 neither provides nor consumes it, so
    after deciding it takes no lock and runs no step, in check mode and for real, and keeps its
    containers; the move still goes through make before break on host1 and host2."""
    before = lab.snapshot()["host3"]["containers"]
    predicted = lab.site(move_redis(topology, "host1"), "--check", "--diff")
    assert predicted.rc == 0, predicted.output[-3000:]
    assert sorted(predicted.steps()) == ["host1", "host2", "host3"]
    assert [task for task, _pairs in predicted.steps()["host3"]] == [DECIDE]
    assert ("create", "redis") in predicted.actions()["host1"] and ("remove", "redis") in predicted.actions()["host2"]
    assert running(lab, "redis") == ["host2"]

    run = converge(lab, topology)
    ran = dict((host, sorted(set(r["task"].split(" : ")[-1] for r in run.results
                                 if r["host"] == host and r["status"] != "skipped"
                                 and r["action"] in ("crosshost.ambassador.lock", "crosshost.ambassador.apply"))))
               for host in lab.hosts)
    assert ran["host3"] == [DECIDE], ran
    assert set([TAKE, MAKE, RELEASE]) <= set(ran["host1"]) and set([TAKE, MAKE, RELEASE]) <= set(ran["host2"]), ran
    (first,) = [r for r in run.results if r["task"].endswith(TAKE_FIRST)]
    assert first["status"] == "ok" and first["result"]["acquired"], first
    assert run.changed()["host3"] == 0 and lab.snapshot()["host3"]["containers"] == before
    assert running(lab, "redis") == ["host1"]
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "PING"]) == "PONG"
    assert not any(_lock_held(lab, h) for h in lab.hosts)
    assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}


@pytest.mark.parametrize("limit, missing", [("host2,host3", "host1"), ("host1", "host3")])
def test_a_limit_that_would_strand_a_moving_service_is_refused_before_any_change(lab, topology, consumer,
                                                                                 limit, missing):
    before = lab.snapshot()
    run = lab.site(move_redis(topology, "host3"), "--limit", limit)
    assert run.rc != 0
    assert "this run changes service redis but leaves out %s" % missing in run.output
    assert "add %s to the limit" % missing in run.output
    assert lab.snapshot() == before
    # Asked for, a partial run goes on; the full run then completes the move.
    partial = lab.site(topology, "--limit", "host1,host2,host3", "-e", "ambassador_allow_partial=true")
    assert partial.rc == 0 and running(lab, "redis") == ["host3"]


@pytest.mark.parametrize("play, words", [("serial: 1", "runs in batches (serial"), ("strategy: free", "strategy free")])
def test_serial_and_free_plays_are_refused_in_one_sentence(lab, topology, tmp_path, play, words):
    converge(lab, topology)
    before = lab.snapshot()
    path = tmp_path / "play.yml"
    path.write_text("- hosts: lab\n  gather_facts: false\n  %s\n  roles: [crosshost.ambassador.topology]\n" % play)
    run = lab.playbook(move_redis(topology, "host3"), str(path))
    assert run.rc != 0 and words in run.output and "nothing was changed" in run.output
    assert lab.snapshot() == before


def _start_site(lab, topology, *args):
    env = dict(os.environ, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
               ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.Popen([os.path.join(VENV_BIN, "ansible-playbook"), "-i", LAB_INVENTORY, "-i", topology.path,
                             "playbooks/site.yml"] + list(args), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True, start_new_session=True)


def _lock_held(lab, host="host1"):
    return bool(lab.client(host).containers.list(all=True, filters={"name": "^%s$" % LOCK}))


class _Copy(object):
    """A topology directory that places redis elsewhere (a second user's inventory)."""

    def __init__(self, path, redis_host):
        self.path = path
        all_yml = os.path.join(path, "group_vars", "all.yml")
        with open(all_yml) as handle:
            data = yaml.safe_load(handle)
        data["ambassador_services"]["redis"]["host"] = redis_host
        with open(all_yml, "w") as handle:
            yaml.safe_dump(data, handle)


def test_two_runs_at_once_take_turns_and_leave_one_place(lab, topology, consumer):
    """A move, and a plain run started while the move holds the lock (two AWX launches): the plain
    run waits, then moves redis back; at no point does redis run nowhere."""
    moving = topology.path + "-moving"
    subprocess.run(["cp", "-r", topology.path, moving], check=True)
    first = _start_site(lab, _Copy(moving, "host3"))
    try:
        wait_for(lambda: _lock_held(lab), "the moving run to take its lock", timeout=60)
        second = lab.site(topology, "-e", "ambassador_lock_timeout=120")
        out = first.communicate(timeout=300)[0]
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 0, out[-3000:]
    assert second.rc == 0, second.output[-3000:]
    lock = lock_taken(second)
    assert any(r.get("waited_for") for r in lock), lock
    # The second run (redis on host2) came last: redis runs there alone, and consumers reach it.
    assert running(lab, "redis") == ["host2"]
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "PING"]) == "PONG"
    assert not any(_lock_held(lab, h) for h in lab.hosts)


def test_a_run_killed_while_holding_the_lock_blocks_the_next_only_for_its_lease(lab, topology, consumer):
    # A lease long enough to outlast the next run's way to its lock step (over SSH, on a loaded machine).
    dead = _start_site(lab, move_redis(topology, "host3"), "-e", "ambassador_lock_lease=20")
    try:
        wait_for(lambda: all(_lock_held(lab, h) for h in lab.hosts), "the run to take its locks", timeout=60)
    finally:
        os.killpg(dead.pid, signal.SIGKILL)
        dead.wait(30)
    assert _lock_held(lab), "the killed run's lock should outlive it until its lease ends"
    run = converge(lab, topology, "-e", "ambassador_lock_timeout=60")
    waited = [r["waited"] for r in lock_taken(run)]
    assert waited and max(waited) >= 1 and max(waited) < 30, waited
    # The next run converged from wherever the killed one stopped.
    assert running(lab, "redis") == ["host3"]
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "PING"]) == "PONG"
    assert not any(".replaced-" in name for h in lab.hosts for name in lab.owned(h))
    assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}


class EngineProxy(object):
    """A unix-socket proxy to a lab engine that holds back the Docker calls ``hold`` picks: they
    reach the engine never, as if the controller had died just before making them. ``delay``
    (request line -> seconds) slows calls down."""

    def __init__(self, upstream, path, hold, delay=None):
        self.upstream, self.path, self.hold, self.delay = upstream, path, hold, delay
        self.held = threading.Event()
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(64)
        self.sockets = [self.server]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        for sock in self.sockets:
            sock.close()

    def _accept(self):
        while True:
            try:
                client, _address = self.server.accept()
            except OSError:
                return
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        """The engine's answers, as they come; its end of a connection (a hijacked exec stream
        ends so) is passed on."""
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    break
                sink.sendall(data)
        except OSError:
            pass

    def _requests(self, client, upstream):
        """Forward one HTTP request at a time (head, then a body of Content-Length bytes)."""
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _sep, rest = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    key, _colon, value = line.partition(b":")
                    if key.strip().lower() == b"content-length":
                        length = int(value.strip())
                while len(rest) < length:
                    data = client.recv(65536)
                    if not data:
                        return
                    rest += data
                request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
                if self.hold(request_line):
                    self.held.set()
                    return  # never forwarded, never answered
                if self.delay:
                    time.sleep(self.delay(request_line))
                upstream.sendall(head + b"\r\n\r\n" + rest[:length])
                buf = rest[length:]
        except OSError:
            pass


@pytest.mark.parametrize("dataplane", ["socat", "kernel"])
def test_a_run_that_dies_mid_replacement_leaves_one_answer_within_a_second(
        lab, topology, consumer, tmp_path, capsys, dataplane):
    """The controller dies after host1's new redis ambassador (pointing at host3) is up and before
    the old one (pointing at host2) is removed: for a moment both answer to the name redis. The
    old one stops by itself within the documented overlap, so consumers see one redis, and the
    next run converges."""
    topology.services["redis"].update(move="make_before_break", dataplane=dataplane)
    converge(lab, topology.save())
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "SET", "place", "old"]) == "OK"
    old = lab.client("host1").containers.get("redis_ambassador")
    proxy = EngineProxy(lab.socket("host1"), str(tmp_path / "host1.sock"),
                        lambda line: line.startswith("DELETE ") and "/containers/%s" % old.id in line)
    topology.host_vars("host1", ambassador_docker_host="unix://%s" % proxy.path)
    dead = _start_site(lab, move_redis(topology, "host3"), "-e", "ambassador_lock_lease=8")
    try:
        wait_for(lambda: proxy.held.is_set() or dead.poll() is not None, "the run to remove host1's old ambassador",
                 timeout=180)
        assert proxy.held.is_set(), "the run ended before it removed host1's old ambassador:\n%s" % (
            dead.communicate()[0][-3000:])
        held = time.time()
        os.killpg(dead.pid, signal.SIGKILL)
        dead.wait(30)
        host1 = lab.client("host1")
        replaced = host1.containers.get(old.id).name
        assert replaced.startswith("redis_ambassador.replaced-")
        assert host1.containers.get("redis_ambassador").id != old.id
        wait_for(lambda: host1.containers.get(old.id).status != "running", "the old ambassador to stop", timeout=30)
        overlap = time.time() - held
    finally:
        if dead.poll() is None:
            os.killpg(dead.pid, signal.SIGKILL)
        proxy.close()
    with capsys.disabled():
        print("\n  run killed mid-replacement (%s): the old redis ambassador stopped %.2f s later" % (dataplane, overlap))
    assert overlap < 3.0
    # It stays stopped (restart policy no), and every request reaches the new place (host3, empty).
    time.sleep(2)
    assert host1.containers.get(old.id).status != "running"
    assert [exec_ok(consumer, ["redis-cli", "-h", "redis", "GET", "place"]) for _attempt in range(10)] == [""] * 10
    # The next run converges: the left-over ambassador goes, redis stays on host3 alone.
    host_vars = os.path.join(topology.path, "host_vars", "host1.yml")
    with open(host_vars) as handle:
        values = yaml.safe_load(handle)
    del values["ambassador_docker_host"]
    with open(host_vars, "w") as handle:
        yaml.safe_dump(values, handle)
    run = converge(lab, topology, "-e", "ambassador_lock_timeout=60")
    assert ("remove", replaced) in run.actions()["host1"]
    assert not any(".replaced-" in name for h in lab.hosts for name in lab.owned(h))
    assert running(lab, "redis") == ["host3"]
    assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}


def _session(sid):
    """Pids of the processes left in session ``sid`` (a run started with start_new_session)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(int(entry))
    return found


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_ansible_playbook_alone_ends_its_workers_and_modules_and_the_next_run_converges(
        lab, topology, consumer, capsys, signum):
    """kill -INT / -TERM of the ansible-playbook process only (not its group), during a move: every
    process of the run ends soon after, consumers still reach redis, and the next run converges."""
    topology.services["redis"]["move"] = "make_before_break"
    converge(lab, topology.save())
    run = _start_site(lab, move_redis(topology, "host3"), "-e", "ambassador_lock_lease=8")
    try:
        wait_for(lambda: _lock_held(lab), "the run to take its lock", timeout=60)
        os.kill(run.pid, signum)
        sent = time.time()
        run.communicate(timeout=60)
        assert run.returncode != 0
        wait_for(lambda: not _session(run.pid), "every process of the interrupted run to end", timeout=30)
        ended = time.time() - sent
    finally:
        if _session(run.pid):
            os.killpg(run.pid, signal.SIGKILL)
    with capsys.disabled():
        print("\n  %s to ansible-playbook: its last process ended %.2f s later" % (signal.Signals(signum).name, ended))
    # Workers and modules stop at their next step instead of finishing the run's current phase.
    assert ended < 5
    assert len(running(lab, "redis")) >= 1
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "PING"]) == "PONG"
    converge(lab, topology, "-e", "ambassador_lock_timeout=60")
    assert running(lab, "redis") == ["host3"]
    assert not any(".replaced-" in name for h in lab.hosts for name in lab.owned(h))
    assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}


def test_two_runs_started_at_the_same_instant_never_each_hold_a_part(lab, topology, consumer, tmp_path):
    """Two runs start at once, and each reaches one engine's lock before the other does (run A is
    slow to host3, run B to host1). Both take the lock of the first engine they change (host1) first, so
    one of them waits whole and both end well; taken in any order, each would hold a part and wait
    for the other's until ambassador_lock_timeout, and both would fail."""
    def slow_lock(line):
        return 3.0 if line.startswith("POST ") and "name=%s" % LOCK in line else 0.0

    proxies, runs = [], []
    try:
        for name, slow_host in (("a", "host3"), ("b", "host1")):
            copy = topology.path + "-" + name
            subprocess.run(["cp", "-r", topology.path, copy], check=True)
            proxy = EngineProxy("/run/crosshost-lab/%s/docker.sock" % slow_host, str(tmp_path / ("%s.sock" % name)),
                                hold=lambda line: False, delay=slow_lock)
            proxies.append(proxy)
            moved = _Copy(copy, "host3")
            with open(os.path.join(copy, "host_vars", "%s.yml" % slow_host), "a") as handle:
                handle.write("\nambassador_docker_host: unix://%s\n" % proxy.path)
            runs.append(_start_site(lab, moved, "-e", "ambassador_lock_timeout=40"))
        outputs = [r.communicate(timeout=300)[0] for r in runs]
    finally:
        for r in runs:
            if r.poll() is None:
                os.killpg(r.pid, signal.SIGKILL)
        for proxy in proxies:
            proxy.close()
    for r, out in zip(runs, outputs):
        assert r.returncode == 0, out[-3000:]
    assert running(lab, "redis") == ["host3"]
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "PING"]) == "PONG"
    assert not any(_lock_held(lab, h) for h in lab.hosts)


def test_a_provider_whose_image_cannot_be_pulled_gives_no_consumer_an_ambassador(lab, topology, consumer):
    """A new service on host3 whose image no registry has: host3 fails naming the pull, and host1,
    its consumer, is given no ambassador that would accept connections and drop them."""
    converge(lab, topology)
    topology.services["web"] = {"host": "host3", "port": 8080, "image": "crosshost-lab/missing:1",
                                "consumers": ["host1"]}
    started = time.time()
    run = lab.site(topology.save())
    took = time.time() - started
    assert run.rc != 0 and run.failed_hosts() == ["host3"], run.output[-3000:]
    msg = run.results_of("crosshost.ambassador.apply")["host3"]["result"]["msg"]
    assert "pulling image crosshost-lab/missing:1" in msg
    assert "web_ambassador" not in lab.owned("host1") and "web_ambassador" not in lab.owned("host3")
    assert "called off the move of web, because host3 failed" in run.output
    # The rest of the topology is untouched and works.
    assert exec_ok(consumer, ["redis-cli", "-h", "redis", "PING"]) == "PONG"
    assert took < 60, "the failed pull took %.0f s" % took
    del topology.services["web"]
    assert converge(lab, topology.save()).changed() == {"host1": 0, "host2": 0, "host3": 0}
