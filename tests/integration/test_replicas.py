"""A service on several hosts, on the lab: what a consumer sees (who answered, which requests failed)
while replicas are spread over, cut off, stopped, brought back and moved; and what the reruns change.

`who` answers each connection with its container's hostname (its id on the engine), so every answer
names the replica that gave it. It runs on host2 and host3; host1's containers use it by name.
"""

import subprocess
import threading
import time
from collections import Counter

from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import healthy_replicas
from conftest import converge, exec_ok, veth_of, wait_for

# The lab names the bridge side of host3's veth pair like this (roles/lab/README.md).
HOST3_VETH = veth_of("host3")
PORT = 7000
# One request per connection, every 20 ms, each given up after 1 s; a line per request:
# "<seconds since boot> <the replica's hostname, or FAIL>", for at most ``seconds`` s or until /tmp/stop exists.
# /proc/uptime is the machine's clock, the same for the test, which notes when it cut a link in the same terms.
CLIENT = r"""
end=$(( $(cut -d. -f1 /proc/uptime) + %(seconds)d ))
rm -f /tmp/stop
while [ ! -e /tmp/stop ]; do
  read t _ < /proc/uptime
  [ "${t%%.*}" -ge "$end" ] && break
  r=$(timeout 1 socat -T1 - TCP:who:%(port)d,connect-timeout=1 </dev/null 2>/dev/null) || r=
  echo "$t ${r:-FAIL}"
  sleep 0.02
done
"""
PROBE_PLAYBOOK = """
- name: Ask host1 which replicas of who its ambassador forwards to
  hosts: host1
  gather_facts: false
  tasks:
    - name: Probe who
      crosshost.ambassador.probe:
        image: "{{ ambassador_image }}"
        service: who
        port: %d
""" % PORT


def who(hosts, **settings):
    return dict({"hosts": list(hosts), "port": PORT, "image": "{{ lab_client_image }}", "consumers": ["host1"],
                 "command": ["socat", "TCP-LISTEN:%d,fork,reuseaddr" % PORT, "SYSTEM:cat /etc/hostname"]}, **settings)


def uptime():
    with open("/proc/uptime") as handle:
        return float(handle.read().split()[0])


class Requests(object):
    """A consumer on host1 sending requests to who in the background, for ``seconds`` or until :meth:`stop`."""

    def __init__(self, container, seconds):
        self.lines = []
        self.container = container
        self.thread = threading.Thread(target=self._run, args=(container, seconds))
        self.thread.start()

    def _run(self, container, seconds):
        _code, output = container.exec_run(["sh", "-c", CLIENT % {"seconds": seconds, "port": PORT}])
        self.lines = [line.split(" ", 1) for line in output.decode().splitlines() if " " in line]

    def stop(self):
        self.container.exec_run(["touch", "/tmp/stop"])

    def results(self):
        """[(seconds since boot, replica hostname or FAIL)], once the requests are done."""
        self.thread.join(150)
        assert not self.thread.is_alive()
        return [(float(t), answer) for t, answer in self.lines]


def uptime_offset():
    """Unix time minus seconds since boot, to put the engine's event times on the requests' clock."""
    return time.time() - uptime()


def replacements(lab, host, name, since):
    """When the container ``name`` on ``host`` was replaced since the unix time ``since``: [(its new self
    created, started)], in seconds since boot, from the engine's events."""
    offset, made = uptime_offset(), {}
    for event in lab.client(host).events(since=int(since), until=int(time.time()) + 1, decode=True,
                                         filters={"type": "container", "container": name}):
        if event["Actor"]["Attributes"].get("name") == name and event["Action"] in ("create", "start"):
            made.setdefault(event["Actor"]["ID"], {})[event["Action"]] = event["timeNano"] / 1e9 - offset
    return sorted((m["create"], m["start"]) for m in made.values() if "create" in m and "start" in m)


def replica_ids(lab, hosts=("host2", "host3")):
    """Hostname a replica answers with -> the lab host it runs on."""
    return dict((lab.client(h).containers.get("who").attrs["Config"]["Hostname"], h) for h in hosts)


def attempt(connect_timeout=1, source_port=None, target="who"):
    """The shell command of a consumer's one connection to who (``target``: by its name, or an address that
    publishes it), from ``source_port`` if given, given up after ``connect_timeout`` s (its SYN is sent again
    after 1 s, then 2, 4, 8 s more): it prints the answer, or FAIL."""
    source = ",sourceport=%d" % source_port if source_port else ""
    return ("socat -T2 - TCP:%s:%d%s,connect-timeout=%d </dev/null 2>/dev/null | grep . || echo FAIL"
            % (target, PORT, source, connect_timeout))


def answered_by(lab, container, count, hosts=("host2", "host3")):
    """Which lab host (of ``hosts``, those running who) answered each of ``count`` connections made one after
    another (FAIL: none did)."""
    out = exec_ok(container, ["sh", "-c", "for i in $(seq %d); do %s; done" % (count, attempt())])
    names = replica_ids(lab, hosts)
    return Counter(names.get(line.strip(), line.strip()) for line in out.splitlines())


def probe_healthy(lab, topology, tmp_path):
    playbook = tmp_path / "probe.yml"
    playbook.write_text(PROBE_PLAYBOOK)
    run = lab.playbook(topology, str(playbook))
    assert run.rc == 0, run.output[-3000:]
    return run.results_of("crosshost.ambassador.probe")["host1"]["result"]["healthy_replicas"]


def with_who(topology, hosts, **settings):
    topology.services["who"] = who(hosts, **settings)
    return topology.save()


def test_connections_spread_across_replicas_and_a_rerun_changes_nothing(lab, topology, tmp_path):
    converge(lab, with_who(topology, ["host2", "host3"]))
    consumer = lab.start_consumer("host1", "replica-client")
    try:
        # The kernel plane was chosen without being asked for; each new connection goes to the next replica.
        assert lab.client("host1").containers.get("who_ambassador").labels["crosshost.ambassador.side"] == "consumer"
        spread = answered_by(lab, consumer, 100)
        assert set(spread) == {"host2", "host3"} and all(40 <= n <= 60 for n in spread.values()), spread
        assert sorted(probe_healthy(lab, topology, tmp_path)) == sorted([lab.address("host2"), lab.address("host3")])
        assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}
    finally:
        consumer.remove(force=True)


def test_failover_sends_everything_to_the_first_healthy_host(lab, topology):
    converge(lab, with_who(topology, ["host3", "host2"], balance="failover"))
    consumer = lab.start_consumer("host1", "replica-client")
    try:
        # (A replica that an earlier run left stopped is back once it passed 2 checks.)
        wait_for(lambda: answered_by(lab, consumer, 20) == {"host3": 20}, "host3 to answer every request", 15)
        lab.client("host3").containers.get("who").stop(timeout=1)
        # Connections to the stopped replica fail until 2 checks (1 s apart) have taken it out.
        wait_for(lambda: answered_by(lab, consumer, 5) == {"host2": 5}, "host2 to answer every request", 15)
    finally:
        consumer.remove(force=True)
    # The rerun starts the stopped replica again (it is the user's to stop, not ours to leave stopped)...
    run = converge(lab, topology)
    assert run.actions() == {"host1": [], "host2": [], "host3": [("start", "who")]}
    consumer = lab.start_consumer("host1", "replica-client")
    try:
        # ...and once it passed 2 checks, it is first again.
        wait_for(lambda: answered_by(lab, consumer, 5) == {"host3": 5}, "host3 to answer every request again", 15)
    finally:
        consumer.remove(force=True)


def test_a_replica_cut_off_is_left_within_seconds_and_taken_back_after(lab, topology, tmp_path):
    converge(lab, with_who(topology, ["host2", "host3"]))
    consumer = lab.start_consumer("host1", "replica-client")
    names = replica_ids(lab)
    try:
        requests = Requests(consumer, 16)
        time.sleep(3)
        cut = uptime()
        subprocess.run(["ip", "link", "set", HOST3_VETH, "down"], check=True)
        try:
            answers = requests.results()
            # host3 is out: the probe says so, and every answer now comes from host2.
            assert probe_healthy(lab, topology, tmp_path) == [lab.address("host2")]
        finally:
            subprocess.run(["ip", "link", "set", HOST3_VETH, "up"], check=True)
        # (A request started in the second before the cut may be cut off with it: each is given up after 1 s.)
        before = Counter(names.get(a, a) for t, a in answers if t < cut - 1)
        assert set(before) == {"host2", "host3"}, before
        failed = [t - cut for t, a in answers if a == "FAIL"]
        # Requests to host3 fail from the cut until its checks fail (2, 1 s apart, 1 s each: ~3 s; bench/run
        # measures the window). After that, every other request would fail if host3 stayed in; none does, nor
        # one whose client reused the port of an attempt to host3 (those are forgotten after 3 s). The bound
        # leaves a second for a loaded machine.
        assert [t for t in failed if t < 6] and not [t for t in failed if t >= 7], failed
        late = Counter(names.get(a, a) for t, a in answers if t > cut + 6 and a != "FAIL")
        assert late and set(late) == {"host2"} and late["host2"] > 50, late
        # The link is back: 2 passed checks, and host3 takes its share again, with no Ansible run.
        wait_for(lambda: answered_by(lab, consumer, 10) == {"host2": 5, "host3": 5}, "host3 to take its share", 20)
        # Nothing for Ansible to do after a failover and back.
        assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}
    finally:
        consumer.remove(force=True)


def test_removing_and_adding_a_replica_keeps_the_service_answering(lab, topology):
    converge(lab, with_who(topology, ["host2", "host3"], dataplane="kernel"))
    kept = lab.client("host2").containers.get("who").id
    consumer = lab.start_consumer("host1", "replica-client")
    try:
        # The client reaches both replicas before the requests are counted: in one clean-clone run, one request
        # failed in the first seconds of a client just started, before any replacement changed anything.
        wait_for(lambda: set(answered_by(lab, consumer, 4)) == {"host2", "host3"}, "both replicas to answer", 20)
        since = time.time()
        requests = Requests(consumer, 120)
        time.sleep(2)
        removed = converge(lab, with_who(topology, ["host2"], dataplane="kernel"))
        # host3 lets go of its replica only after host1's ambassador stopped sending it anything.
        assert removed.actions() == {"host1": [("recreate", "who_ambassador")], "host2": [],
                                     "host3": [("remove", "who"), ("remove", "who_ambassador")]}
        added = converge(lab, with_who(topology, ["host2", "host3"], dataplane="kernel"))
        assert added.actions() == {"host1": [("recreate", "who_ambassador")], "host2": [],
                                   "host3": [("create", "who"), ("create", "who_ambassador")]}
        time.sleep(3)
        requests.stop()
        answers = requests.results()
    finally:
        consumer.remove(force=True)
    # The replica that stayed was never touched, and the service answered all along...
    assert lab.client("host2").containers.get("who").id == kept
    names = replica_ids(lab)
    seen = Counter(names.get(a, "another" if a != "FAIL" else a) for _t, a in answers)
    replaced = replacements(lab, "host1", "who_ambassador", since)
    assert len(replaced) == 2, replaced
    # ...but for an attempt made while the engine started host1's new ambassador: Docker's DNS names a
    # container from the start of its start, before its interface is up, so an attempt sent to the new
    # address then waits for a SYN retransmission (1 s), longer than this client waits (README: Replicas).
    # The old ambassador answers until the new one has started; nothing fails at any other time.
    failed = [t for t, a in answers if a == "FAIL"]
    starting = [[t for t in failed if created - 0.5 <= t <= started + 0.5] for created, started in replaced]
    assert sum(len(f) for f in starting) == len(failed) and all(len(f) <= 2 for f in starting), \
        (failed, replaced, seen)
    # Once host1's last ambassador has started, host3's new replica takes its share.
    after = Counter(names.get(a, a) for t, a in answers if t > replaced[-1][1] + 1)
    assert set(after) == {"host2", "host3"}, after


# who, answering each line after its hostname: a connection that stays open for as long as its client wants.
KEEPS_OPEN = ["socat", "TCP-LISTEN:%d,fork,reuseaddr" % PORT, "SYSTEM:cat /etc/hostname; cat"]
# A client holding one connection to who, sending a line every 0.2 s; what comes back goes to /tmp/held.
HELD = "(while sleep 0.2; do echo ping; done) | socat - TCP:who:%d > /tmp/held" % PORT


def held_lines(consumer):
    return int(exec_ok(consumer, ["sh", "-c", "wc -l < /tmp/held"]).strip() or 0)


def test_a_new_replica_list_reaches_the_running_ambassador_and_open_connections_stay(lab, topology):
    converge(lab, with_who(topology, ["host2", "host3"], balance="failover", command=KEEPS_OPEN))
    ambassador = lab.client("host1").containers.get("who_ambassador")
    consumer = lab.start_consumer("host1", "replica-holder")
    try:
        assert answered_by(lab, consumer, 3) == {"host2": 3}
        consumer.exec_run(["sh", "-c", HELD], detach=True)
        wait_for(lambda: held_lines(consumer) >= 3, "the held connection to answer", 20)
        names = replica_ids(lab)
        assert names[exec_ok(consumer, ["head", "-n1", "/tmp/held"]).strip()] == "host2"

        # host3 first: the new list is put in the ambassador that stays; nothing else changes anywhere.
        reordered = converge(lab, with_who(topology, ["host3", "host2"], balance="failover", command=KEEPS_OPEN))
        assert reordered.actions() == {"host1": [("deliver", "who_ambassador")], "host2": [], "host3": []}
        wait_for(lambda: answered_by(lab, consumer, 3) == {"host3": 3}, "new connections to go to host3", 20)
        assert lab.client("host1").containers.get("who_ambassador").id == ambassador.id
        # The connection opened before, to host2, is still open and answering.
        before = held_lines(consumer)
        wait_for(lambda: held_lines(consumer) >= before + 5, "the held connection to keep answering", 20)
        assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}

        # The list lives in the container: it survives a restart, which needs no Ansible run.
        ambassador.restart(timeout=5)
        wait_for(lambda: answered_by(lab, consumer, 3) == {"host3": 3}, "host3 to answer after the restart", 30)
        assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}
    finally:
        consumer.remove(force=True)


def test_a_consumer_host_comes_and_goes_through_the_allow_list_of_a_kernel_provider_that_stays(lab, topology):
    # The allow-list of a provider-side kernel ambassador is a file delivered to it, as a replica list is
    # (README: Replicas): a consumer host added or taken out recreates nothing, nor cuts a connection open
    # through it, and is let in, or refused, by the time the run ends.
    converge(lab, with_who(topology, ["host2"], dataplane="kernel", command=KEEPS_OPEN))
    provider = lab.client("host2").containers.get("who_ambassador").id
    holder = lab.start_consumer("host1", "replica-holder")
    outsider = lab.start_consumer("host3", "replica-outsider")
    published = attempt(target=lab.address("host2"))
    try:
        holder.exec_run(["sh", "-c", HELD], detach=True)
        wait_for(lambda: held_lines(holder) >= 3, "the held connection to answer", 20)
        # host3 consumes nothing: host2 does not let it in.
        assert exec_ok(outsider, ["sh", "-c", published]) == "FAIL"

        added = converge(lab, with_who(topology, ["host2"], dataplane="kernel", command=KEEPS_OPEN,
                                       consumers=["host1", "host3"]))
        assert added.actions() == {"host1": [], "host2": [("deliver", "who_ambassador")],
                                   "host3": [("create", "who_ambassador")]}
        assert answered_by(lab, outsider, 3, hosts=["host2"]) == {"host2": 3}
        assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}

        taken_out = converge(lab, with_who(topology, ["host2"], dataplane="kernel", command=KEEPS_OPEN))
        assert taken_out.actions() == {"host1": [], "host2": [("deliver", "who_ambassador")],
                                       "host3": [("remove", "who_ambassador")]}
        assert exec_ok(outsider, ["sh", "-c", published]) == "FAIL"
        # The provider-side ambassador stayed, and so did the connection open through it, answering.
        assert lab.client("host2").containers.get("who_ambassador").id == provider
        before = held_lines(holder)
        wait_for(lambda: held_lines(holder) >= before + 5, "the held connection to keep answering", 20)
        assert converge(lab, topology).changed() == {"host1": 0, "host2": 0, "host3": 0}
    finally:
        holder.remove(force=True)
        outsider.remove(force=True)


def test_an_attempt_to_a_replica_cut_off_does_not_send_its_port_there_again(lab, topology):
    # Checks 2 s apart: host3 is taken out 2-4 s after the cut, time enough for the attempts below to reach it
    # first on a loaded machine.
    converge(lab, with_who(topology, ["host3", "host2"], balance="failover", health={"interval": 2}))
    ambassador = lab.client("host1").containers.get("who_ambassador")
    consumer = lab.start_consumer("host1", "replica-client")
    names = replica_ids(lab)
    try:
        wait_for(lambda: answered_by(lab, consumer, 5) == {"host3": 5}, "host3 to answer every request", 15)
        subprocess.run(["ip", "link", "set", HOST3_VETH, "down"], check=True)
        try:
            # While host3 is still first: an attempt that keeps trying for 20 s, and one given up after 1 s.
            consumer.exec_run(["sh", "-c", "{ %s; } > /tmp/patient" % attempt(20, source_port=40002)], detach=True)
            assert exec_ok(consumer, ["sh", "-c", attempt(1, source_port=40001)]) == "FAIL"
            given_up = time.monotonic()
            wait_for(lambda: healthy_replicas(ambassador.logs().decode()) == [lab.address("host2")],
                     "host1's ambassador to take host3 out", 15)
            # The port of the attempt given up is free again at once, and clients reuse such ports (the bench saw
            # one reused after 42 s). The attempt is forgotten 3 s after its last SYN, not after the kernel's
            # 120 s, so the port's next connection is balanced afresh: to host2, not to host3 again.
            time.sleep(max(0.0, given_up + 5 - time.monotonic()))
            assert names.get(exec_ok(consumer, ["sh", "-c", attempt(2, source_port=40001)])) == "host2"
            # The attempt still trying: its SYN sent 4 s after the one before is balanced afresh too.
            wait_for(lambda: exec_ok(consumer, ["cat", "/tmp/patient"]), "the attempt still trying to end", 25)
            assert names.get(exec_ok(consumer, ["cat", "/tmp/patient"])) == "host2"
        finally:
            subprocess.run(["ip", "link", "set", HOST3_VETH, "up"], check=True)
        wait_for(lambda: answered_by(lab, consumer, 3) == {"host3": 3}, "host3 to answer again", 20)
    finally:
        consumer.remove(force=True)
