"""crosshost.ambassador benchmark: every figure measured side by side with its baseline.

    bench/run [--quick] [--json PATH] [--only SECTION ...]

Sections (see bench/README.md): planning, controller, apply, datapath, disruption, scale.
Prints a table and writes it, with every raw sample, as JSON (default
bench/results/latest.json; --quick: bench/results/quick.json). A run of some sections
(--only) keeps the other sections of the JSON file it writes to, from their own runs.

The lab sections run on the bench's own lab instance (hosts bench1..bench3,
bridge xhbench0, 10.77.20.0/24), created or reused with playbooks/lab.yml; the
scale section grows it to bench1..bench24 (from nothing) and shrinks it back.
Every load is bounded in count and time.
"""

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import docker
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(1, os.path.join(ROOT, "tests", "integration"))

import controller  # noqa: E402  (puts the collection on the path: bench/planning.py)
from ansible_collections.crosshost.ambassador.plugins.module_utils._dataplane import healthy_replicas  # noqa: E402
from labkit import ansible_playbook, exec_ok, stop_dockerd, veth_of, wait_for  # noqa: E402  (shared with the tests)

BENCH_LAB = {
    "lab_hosts": ["bench1", "bench2", "bench3"],
    "lab_bridge": "xhbench0",
    "lab_subnet": "10.77.20.0/24",
    "lab_state_dir": "/var/lib/crosshost-bench",
    "lab_run_dir": "/run/xhbench",
    "lab_inventory": "/var/lib/crosshost-bench/inventory.yml",
}
BENCH_LABEL = "crosshost-bench"
SECTIONS = ("planning", "controller", "apply", "datapath", "disruption", "replicas", "scale")
# How the topology role applies a change: make-before-break across hosts (default), or one step.
MODES = {"make-before-break": [], "one step": ["-e", "ambassador_make_before_break=false"]}

# Sizes: (full run, --quick).
SIZES = {
    "planning": ([(10, 10), (100, 100), (1000, 1000), (5000, 1000)], [(10, 10), (100, 100), (1000, 100)]),
    "planning_repeat": (5, 2),
    "controller_hosts": (((1000, 100), (5000, 100)), ((50, 20),)),
    "controller_rounds": (2, 1),
    "apply_services": (50, 6),
    "apply_rounds": (3, 1),
    "bench_requests": ({16: 200000, 1: 40000}, {16: 5000, 1: 2000}),
    "datapath_rounds": (3, 1),
    "disruption_rounds": (3, 1),
    # The probe outlasts the move (its playbook takes 6-27 s here): a shorter probe could end inside the
    # window of failed requests and report no recovery.
    "disruption_seconds": (25, 25),
    # replicas: new connections counted over 3 replicas; rounds of each failure.
    "replicas_connections": (300, 60),
    "replicas_rounds": (3, 1),
    # scale: lab hosts, the forks tried at each count, rounds; the largest count is also run without
    # pipelining (forks 25); the lab is brought up from nothing (timed) in the full run only.
    "scale_hosts": ((3, 12, 24), (3,)),
    "scale_forks": ((5, 10, 25), (5,)),
    "scale_rounds": (3, 1),
    "scale_move_rounds": (3, 1),
    "scale_from_nothing": (True, False),
}


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def median(values):
    return statistics.median(values) if values else None


class Playbook(object):
    """ansible-playbook runs (the integration tests' runner), timed, with what the apply module did."""

    def __init__(self, workdir):
        self.workdir = workdir

    def run(self, args, check=True):
        start, used = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
        run = ansible_playbook(args, self.workdir)
        elapsed, now = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (now.ru_utime + now.ru_stime) - (used.ru_utime + used.ru_stime)
        if check and run.rc != 0:
            failures = [r["host"] + ": " + str(r["result"].get("msg")) for r in run.results if r["status"] == "failed"]
            raise RuntimeError("ansible-playbook %s failed:\n%s\n%s"
                               % (" ".join(args), run.output[-3000:], "\n".join(failures)))
        steps = set(task for host_steps in run.steps().values() for task, _actions in host_steps)
        return {"rc": run.rc, "seconds": elapsed, "cpu_seconds": cpu, "changed": run.changed(), "actions": run.actions(),
                "apply_steps": len(steps)}


class BenchLab(object):
    """The bench's own lab instance: its engines, inventory and topology directory."""

    def __init__(self, playbook, workdir):
        self.playbook = playbook
        self.topology_dir = os.path.join(workdir, "topology")
        os.makedirs(os.path.join(self.topology_dir, "group_vars"), exist_ok=True)
        self._clients = {}

    def up(self, hosts=None, state="present"):
        """The lab with these hosts (default bench1..bench3), pruning others; or torn down (state=absent)."""
        spec = dict(BENCH_LAB, lab_hosts=hosts or BENCH_LAB["lab_hosts"], lab_state=state)
        log("%s the bench lab %s" % ("bringing up (or reusing)" if state == "present" else "tearing down",
                                     ", ".join(spec["lab_hosts"])))
        run = self.playbook.run(["playbooks/lab.yml", "-e", json.dumps(spec)])
        self._clients = {}
        if state == "present":
            self.read_inventory()
        return run

    def read_inventory(self):
        with open(BENCH_LAB["lab_inventory"]) as handle:
            lab = yaml.safe_load(handle)["all"]["children"]["lab"]
        self.hosts, self.vars = lab["hosts"], lab["vars"]

    def client(self, host):
        if host not in self._clients:
            # The engine's socket as seen from this machine (the host itself sees it at /var/run/docker.sock).
            self._clients[host] = docker.DockerClient(base_url="unix://" + self.hosts[host]["lab_docker_socket"],
                                                      timeout=120)
        return self._clients[host]

    def address(self, host):
        return self.hosts[host]["ambassador_advertise_address"]

    def write_topology(self, services, **extra):
        data = dict(extra, ambassador_services=services)
        with open(os.path.join(self.topology_dir, "group_vars", "all.yml"), "w") as handle:
            yaml.safe_dump(data, handle, default_flow_style=False)

    def site(self, *args):
        return self.playbook.run(["-i", BENCH_LAB["lab_inventory"], "-i", self.topology_dir, "playbooks/site.yml"]
                                 + list(args))

    def naive(self):
        return self.playbook.run(["-i", BENCH_LAB["lab_inventory"], "-i", self.topology_dir,
                                  os.path.join(HERE, "naive.yml")])

    def containers(self):
        """host -> {name: id} of every container."""
        return self.containers_of(self.hosts)

    def containers_of(self, hosts):
        return dict((h, dict((c.name, c.id) for c in self.client(h).containers.list(all=True))) for h in hosts)

    def remove_bench_containers(self, host):
        for c in self.client(host).containers.list(all=True, filters={"label": BENCH_LABEL}):
            c.remove(force=True)

    def run_bench_container(self, host, name, image, command, **kwargs):
        client = self.client(host)
        for old in client.containers.list(all=True, filters={"name": "^%s$" % name}):
            old.remove(force=True)
        return client.containers.run(image, command, name=name, detach=True, labels={BENCH_LABEL: "true"}, **kwargs)


# ---------------------------------------------------------------- planning

def bench_planning(cfg, results):
    rows = []
    for n_hosts, n_services in cfg["planning"]:
        log("planning %d hosts x %d services" % (n_hosts, n_services))
        out = subprocess.run([sys.executable, os.path.join(HERE, "planning.py"), str(n_hosts), str(n_services),
                              str(cfg["planning_repeat"])], check=True, stdout=subprocess.PIPE,
                             universal_newlines=True, timeout=600).stdout
        row = json.loads(out)
        row["us_per_ambassador"] = row["plan_s"] / max(1, row["ambassadors"]) * 1e6
        row["ratio_to_serialise"] = row["plan_s"] / row["serialise_s"]
        rows.append(row)
    results["planning"] = rows


# ---------------------------------------------------------------- controller

def bench_controller(cfg, results, playbook, workdir):
    """Each size: the four playbooks of bench/controller.py, interleaved, wall and CPU seconds (the CPU
    time of ansible-playbook and its workers: steadier than wall time on a loaded machine)."""
    results["controller"] = []
    for n_hosts, n_services in cfg["controller_hosts"]:
        log("controller side: %d hosts x %d services, inside ansible-playbook" % (n_hosts, n_services))
        inventory, books = controller.write(os.path.join(workdir, "controller-%d" % n_hosts), n_hosts, n_services)
        times = dict((name, []) for name in books)
        cpu = dict((name, []) for name in books)
        for _round in range(cfg["controller_rounds"]):
            for name in ("startup", "plan_task", "per_host_fact", "role_plan", "env_fact"):
                run = playbook.run(["-i", inventory, books[name]])
                times[name].append(run["seconds"])
                cpu[name].append(run["cpu_seconds"])
        med = dict((name, median(v)) for name, v in times.items())
        med_cpu = dict((name, median(v)) for name, v in cpu.items())
        results["controller"].append({
            "hosts": n_hosts, "services": n_services, "seconds": times, "cpu_seconds": cpu,
            "median": med, "median_cpu": med_cpu,
            "plan_task_added_s": med["plan_task"] - med["startup"],
            "plan_task_ratio": med["plan_task"] / med["startup"],
            "role_plan_added_s": med["role_plan"] - med["per_host_fact"],
            "role_plan_ratio": med["role_plan"] / med["per_host_fact"],
            "role_plan_cpu_ratio": med_cpu["role_plan"] / med_cpu["per_host_fact"],
            "env_fact_ratio": med["env_fact"] / med["per_host_fact"],
            "env_fact_cpu_ratio": med_cpu["env_fact"] / med_cpu["per_host_fact"],
        })


# ---------------------------------------------------------------- apply

def echo_services(lab, count):
    """`count` stateless TCP echo services spread over the lab hosts, each consumed by the other hosts."""
    hosts = sorted(lab.hosts)
    services = {}
    for i in range(count):
        port = 7100 + i
        services["svc%02d" % i] = {
            "host": hosts[i % len(hosts)],
            "port": port,
            "image": lab.vars["lab_client_image"],
            "command": ["socat", "TCP-LISTEN:%d,fork,reuseaddr" % port, "EXEC:/bin/cat"],
            "consumers": [h for h in hosts if h != hosts[i % len(hosts)]],
        }
    return services


def touched(before, after):
    """Names of containers created, removed or replaced between two snapshots, per host."""
    out = {}
    for host in before:
        names = set(before[host]) | set(after[host])
        changed = sorted(n for n in names if before[host].get(n) != after[host].get(n))
        if changed:
            out[host] = changed
    return out


def bench_apply(cfg, results, lab):
    n = cfg["apply_services"]
    services = echo_services(lab, n)
    lab.write_topology(services)
    log("apply: converging %d services on %d hosts" % (n, len(lab.hosts)))
    first = lab.site()
    noop, naive, noop_around_moves = [], [], []
    moves = dict((mode, []) for mode in MODES)
    checks = {"noop_changed": [], "naive_changed": [], "move_touched": [], "move_only_that_service": [],
              "move_apply_steps": dict((mode, []) for mode in MODES)}
    for _round in range(cfg["apply_rounds"]):
        a = lab.site()
        noop.append(a["seconds"])
        checks["noop_changed"].append(sum(a["changed"].values()))
        b = lab.naive()
        naive.append(b["seconds"])
        checks["naive_changed"].append(sum(b["changed"].values()))
    # One move among n: svc01 goes from its host to the next one and back, no-op runs in between.
    moved = "svc01"
    hosts = sorted(lab.hosts)
    home = services[moved]["host"]
    away = hosts[(hosts.index(home) + 1) % len(hosts)]
    for i in range(2 * cfg["apply_rounds"]):
        mode = list(MODES)[i % 2]  # interleaved: one mode, then the other
        target = away if i % 2 == 0 else home
        services[moved]["host"] = target
        services[moved]["consumers"] = [h for h in hosts if h != target]
        lab.write_topology(services)
        before = lab.containers()
        m = lab.site(*MODES[mode])
        after = lab.containers()
        moves[mode].append(m["seconds"])
        checks["move_apply_steps"][mode].append(m["apply_steps"])
        t = touched(before, after)
        count = sum(len(v) for v in t.values())
        checks["move_touched"].append({"containers": count, "by_host": t, "actions": m["actions"]})
        checks["move_only_that_service"].append(all(name.startswith(moved) for v in t.values() for name in v))
        noop_around_moves.append(lab.site()["seconds"])
    results["apply"] = {
        "services": n,
        "hosts": len(lab.hosts),
        "containers": sum(len(v) for v in lab.containers().values()),
        "first_converge_s": first["seconds"],
        "noop_s": noop, "naive_noop_s": naive, "move_s": moves, "noop_after_move_s": noop_around_moves,
        "noop_median_s": median(noop), "naive_median_s": median(naive),
        "naive_over_noop": median(naive) / median(noop),
        "move_median_s": dict((mode, median(v)) for mode, v in moves.items()),
        "move_over_noop": dict((mode, median(v) / median(noop + noop_around_moves)) for mode, v in moves.items()),
        "checks": checks,
    }


# ---------------------------------------------------------------- datapath

REDIS_PORTS = {"direct": 16379, "socat_classic": 16380, "socat": 6381, "socat_2_consumers": 6383, "kernel": 6382,
               "kernel_2_replicas": 6384}


def classic_socat(listen, target):
    """The classic ambassador before this collection's fix: socat's default backlog (5), Nagle on."""
    return ["-t", "100000000", "TCP4-LISTEN:%d,fork,reuseaddr" % listen, "TCP4:%s" % target]


def setup_datapath(lab):
    """redis on bench2 reached from bench1: direct (published), classic socat pair, and the
    collection's socat (one consumer, and two) and kernel ambassadors."""
    consumer, provider = "bench1", "bench2"

    def redis(port):
        return ["redis-server", "--port", str(port), "--protected-mode", "no", "--save", "", "--appendonly", "no"]
    services = {}
    for plane in ("socat", "kernel"):
        port = REDIS_PORTS[plane]
        services["redis-%s" % plane] = {"host": provider, "port": port, "image": lab.vars["lab_redis_image"],
                                        "command": redis(port), "dataplane": plane, "consumers": [consumer]}
    # Two consumers: the provider-side socat checks each connection's peer address in a shell.
    port = REDIS_PORTS["socat_2_consumers"]
    services["redis-shared"] = {"host": provider, "port": port, "image": lab.vars["lab_redis_image"],
                                "command": redis(port), "dataplane": "socat", "consumers": [consumer, "bench3"]}
    # Two replicas (bench2 and bench3), balanced by the consumer-side ambassador (the kernel plane, unasked).
    port = REDIS_PORTS["kernel_2_replicas"]
    services["redis-replicas"] = {"hosts": [provider, "bench3"], "port": port, "image": lab.vars["lab_redis_image"],
                                  "command": redis(port), "consumers": [consumer]}
    lab.write_topology(services)
    lab.site()
    addr = lab.address(provider)
    for host in (consumer, provider):
        lab.remove_bench_containers(host)
    lab.run_bench_container(provider, "bench-redis-direct", lab.vars["lab_redis_image"], redis(REDIS_PORTS["direct"]),
                            ports={"%d/tcp" % REDIS_PORTS["direct"]: (addr, REDIS_PORTS["direct"])})
    port = REDIS_PORTS["socat_classic"]
    lab.run_bench_container(provider, "bench-redis-classic", lab.vars["lab_redis_image"], redis(port),
                            network="ambassador")
    lab.run_bench_container(provider, "bench-classic-provider", lab.vars["ambassador_image"],
                            classic_socat(port, "bench-redis-classic:%d" % port), network="ambassador",
                            ports={"%d/tcp" % port: (addr, port)})
    lab.run_bench_container(consumer, "bench-classic-consumer", lab.vars["ambassador_image"],
                            classic_socat(port, "%s:%d" % (addr, port)), network="ambassador")
    client = lab.run_bench_container(consumer, "bench-client", lab.vars["lab_client_image"], ["sleep", "100000"],
                                     network="ambassador")
    return client, {
        "direct": (addr, REDIS_PORTS["direct"]),
        "socat_classic": ("bench-classic-consumer", REDIS_PORTS["socat_classic"]),
        "socat": ("redis-socat", REDIS_PORTS["socat"]),
        "socat_2_consumers": ("redis-shared", REDIS_PORTS["socat_2_consumers"]),
        "kernel": ("redis-kernel", REDIS_PORTS["kernel"]),
        "kernel_2_replicas": ("redis-replicas", REDIS_PORTS["kernel_2_replicas"]),
    }


def cpu_busy_seconds():
    """CPU time the whole machine spent busy so far (all cores, /proc/stat), in seconds."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / float(os.sysconf("SC_CLK_TCK"))


def redis_benchmark(client, host, port, pipeline, requests):
    """SET and GET, 50 clients, bounded: -n requests, and at most 120 s. Also the machine's CPU
    time per request while it ran (the lab's hosts all share this machine's cores)."""
    cmd = ["timeout", "120", "redis-benchmark", "-h", host, "-p", str(port), "-c", "50", "-n", str(requests),
           "-P", str(pipeline), "-t", "set,get", "--csv"]
    busy, start = cpu_busy_seconds(), time.perf_counter()
    code, out = client.exec_run(cmd)
    busy, wall = cpu_busy_seconds() - busy, time.perf_counter() - start
    text = out.decode("utf-8", "replace")
    rows = {}
    for line in text.splitlines():
        parts = [p.strip('"') for p in line.split(",")]
        if len(parts) >= 8 and parts[0] in ("SET", "GET"):
            rows[parts[0]] = {"rps": float(parts[1]), "p50_ms": float(parts[4]), "p99_ms": float(parts[6]),
                              "max_ms": float(parts[7])}
    if code != 0 or len(rows) != 2:
        return {"error": "exit %s: %s" % (code, text[-500:])}
    rows["cpu_us_per_request"] = busy / (2.0 * requests) * 1e6
    rows["cores_busy"] = busy / wall
    return rows


def bench_datapath(cfg, results, lab):
    log("data path: redis-benchmark bench1 -> bench2, direct vs ambassadors")
    client, targets = setup_datapath(lab)
    for target in targets.values():
        exec_ok(client, ["redis-cli", "-h", target[0], "-p", str(target[1]), "PING"], attempts=20, expect="PONG")
    samples = dict((path, dict((p, []) for p in cfg["bench_requests"])) for path in targets)
    for _round in range(cfg["datapath_rounds"]):
        for pipeline, requests in sorted(cfg["bench_requests"].items(), reverse=True):
            for path in targets:  # interleaved: direct, classic, socat, kernel, then again
                log("  %s -P %d" % (path, pipeline))
                samples[path][pipeline].append(redis_benchmark(client, targets[path][0], targets[path][1],
                                                               pipeline, requests))
    summary = {}
    for path, by_p in samples.items():
        for pipeline, runs in by_p.items():
            ok = [r for r in runs if "error" not in r]
            entry = {"runs": len(runs), "errors": len(runs) - len(ok),
                     "cpu_us_per_request": median([r["cpu_us_per_request"] for r in ok]),
                     "cores_busy": median([r["cores_busy"] for r in ok])}
            for op in ("SET", "GET"):
                if ok:
                    entry[op] = dict((k, median([r[op][k] for r in ok])) for k in ("rps", "p50_ms", "p99_ms", "max_ms"))
            summary["%s P%d" % (path, pipeline)] = entry
    for key, entry in summary.items():
        direct = summary.get("direct P%s" % key.split(" P")[1])
        for op in ("SET", "GET"):
            if op in entry and direct and op in direct:
                entry[op]["ratio_to_direct"] = entry[op]["rps"] / direct[op]["rps"]
    results["datapath"] = {"requests": cfg["bench_requests"], "clients": 50, "summary": summary, "samples": samples}
    for host in ("bench1", "bench2"):
        lab.remove_bench_containers(host)


# ---------------------------------------------------------------- replicas

REPLICA_HOSTS = ["bench1", "bench2", "bench3", "bench4"]  # bench1 consumes; the others are the replicas
REPLICA_PORT = 7000


def replica_services(lab, replicas, consumer):
    """who (answers with its container's hostname) and echo, each on every replica."""
    image = lab.vars["lab_client_image"]
    return {
        "who": {"hosts": replicas, "port": REPLICA_PORT, "image": image, "consumers": [consumer],
                "command": ["socat", "TCP-LISTEN:%d,fork,reuseaddr" % REPLICA_PORT, "SYSTEM:cat /etc/hostname"]},
        "echo": {"hosts": replicas, "port": REPLICA_PORT + 1, "image": image, "consumers": [consumer],
                 "command": ["socat", "TCP-LISTEN:%d,fork,reuseaddr" % (REPLICA_PORT + 1), "EXEC:/bin/cat"]},
    }


def _cut_link(lab, host):
    veth = veth_of(host)
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)
    return lambda: subprocess.run(["ip", "link", "set", veth, "up"], check=True)


def _stop_engine(lab, host):
    stop_dockerd(os.path.dirname(lab.hosts[host]["lab_docker_socket"]))
    return lambda: lab.up(REPLICA_HOSTS)


def _kill_service(lab, host):
    container = lab.client(host).containers.get("echo")
    container.kill()
    return container.start


FAILURES = (("link cut", _cut_link), ("engine stopped", _stop_engine), ("service container killed", _kill_service))


def start_probe(lab, host, container, *args):
    """probe.py (``args``: its arguments) in the network namespace of ``container`` on lab host ``host``, as
    that container's own processes would connect; its JSON comes on the returned process's stdout."""
    pid = lab.client(host).api.inspect_container(container.id)["State"]["Pid"]
    return subprocess.Popen(["nsenter", "--net=/proc/%d/ns/net" % pid, sys.executable, os.path.join(HERE, "probe.py")]
                            + [str(a) for a in args], stdout=subprocess.PIPE, universal_newlines=True)


def failover_window(lab, client, failure, seconds):
    """Fresh connections every 20 ms to echo (3 replicas, round robin) from bench1; after 3 s, ``failure`` hits
    bench4. Returns when the failed requests stopped after it hit (the window), and how many failed."""
    probe = start_probe(lab, "bench1", client, "echo", REPLICA_PORT + 1, "--seconds", seconds, "--interval", "0.02",
                        "--timeout", "0.5", "--fresh", "--clock", "--why")
    time.sleep(3)
    hit = time.monotonic()
    restore = failure(lab, "bench4")
    try:
        stdout, _stderr = probe.communicate(timeout=seconds + 60)
    finally:
        restore()
    samples = json.loads(stdout)
    failed = [s[0] - hit for s in samples if not s[1] and s[0] >= hit]
    return {"window_s": max(failed) if failed else 0.0, "failed_requests": len(failed), "requests": len(samples),
            "failed_at_s": [round(t, 3) for t in failed],
            "failed_why": [s[2] for s in samples if not s[1] and s[0] >= hit],
            "failed_before_hit": len([s for s in samples if not s[1] and s[0] < hit]),
            "ok_at_end": all(s[1] for s in samples if s[0] > hit + seconds - 5),
            "ok_share_at_end": (len([s for s in samples if s[1] and s[0] > hit + seconds - 5])
                                / max(1, len([s for s in samples if s[0] > hit + seconds - 5])))}


# Changes of echo's replica set, each from the one before, while a connection is held open to bench2
# (failover: bench2 first): the list delivered to bench1's running ambassador (bench4 out, then back), and
# the same two with a health setting changed too, which recreates that ambassador (the baseline).
SET_CHANGES = (("delivered", "bench4 removed", ["bench2", "bench3"], 1),
               ("delivered", "bench4 added", ["bench2", "bench3", "bench4"], 1),
               ("recreated", "bench4 removed", ["bench2", "bench3"], 2),
               ("recreated", "bench4 added", ["bench2", "bench3", "bench4"], 1))


def replica_set_changes(lab, client, services):
    """For each of SET_CHANGES: failed requests of a client holding one connection to echo (a request every
    10 ms; on a failure it connects again), from 3 s before site.yml makes the change to 3 s after."""
    echo = dict(services["echo"], balance="failover")
    lab.write_topology(dict(services, echo=echo))
    lab.site()
    out = []
    for how, what, hosts, interval in SET_CHANGES:
        probe = start_probe(lab, "bench1", client, "echo", REPLICA_PORT + 1, "--seconds", 600, "--timeout", "0.5",
                            "--clock", "--why")
        time.sleep(3)
        echo = dict(echo, hosts=hosts, health={"interval": interval})
        lab.write_topology(dict(services, echo=echo))
        started = time.monotonic()
        run = lab.site()
        ended = time.monotonic()
        time.sleep(3)
        probe.terminate()
        stdout, _stderr = probe.communicate(timeout=60)
        samples = json.loads(stdout)
        failed = [s for s in samples if not s[1]]
        out.append({"how": how, "change": what, "failed_requests": len(failed), "requests": len(samples),
                    "failed_why": [s[2] for s in failed][:5], "playbook_s": ended - started,
                    "actions": dict((h, a) for h, a in run["actions"].items() if a)})
    return out


def bench_replicas(cfg, results, lab):
    log("replicas: spread over 3 replicas, and the failover window of each failure")
    lab.up(REPLICA_HOSTS)
    consumer, replicas = REPLICA_HOSTS[0], REPLICA_HOSTS[1:]
    lab.write_topology(replica_services(lab, replicas, consumer))
    lab.site()
    # Every replica in before anything is counted: an ambassador kept from an earlier run takes a replica host
    # brought back since (bench4, pruned between runs) only once it passed 2 checks.
    everyone = sorted(lab.address(h) for h in replicas)
    for name in ("who", "echo"):
        logs = lab.client(consumer).containers.get(name + "_ambassador").logs
        wait_for(lambda used=logs: sorted(healthy_replicas(used().decode()) or []) == everyone,
                 "%s's ambassador on %s to use every replica" % (name, consumer), 30)
    client = lab.run_bench_container(consumer, "bench-client", lab.vars["lab_client_image"], ["sleep", "100000"],
                                     network="ambassador")
    names = dict((lab.client(h).containers.get("who").attrs["Config"]["Hostname"], h) for h in replicas)
    count = cfg["replicas_connections"]
    spread_started = time.time()
    out = exec_ok(client, ["sh", "-c", "for i in $(seq %d); do socat -T2 - TCP:who:%d </dev/null; done"
                           % (count, REPLICA_PORT)])
    spread = dict((h, 0) for h in replicas)
    for line in out.splitlines():
        host = names.get(line.strip())
        if host:
            spread[host] += 1
    windows = dict((name, []) for name, _f in FAILURES)
    spread_s = [spread_started, time.time()]
    for _round in range(cfg["replicas_rounds"]):
        for name, failure in FAILURES:
            log("  %s" % name)
            windows[name].append(failover_window(lab, client, failure, 14))
            # Back to 3 healthy replicas (rise: 2 checks) and nothing for Ansible to do, before the next.
            exec_ok(client, ["sh", "-c", "sleep 4; for i in 1 2 3; do echo x | socat -T1 - "
                             "TCP:echo:%d,connect-timeout=1 || exit 1; done" % (REPLICA_PORT + 1)], attempts=10)
    after = lab.site()
    log("  replica set changes, a connection held open")
    changes = replica_set_changes(lab, client, replica_services(lab, replicas, consumer))
    client.remove(force=True)
    # What the consumer-side ambassadors decided, with the engine's timestamps (the health changes).
    logs = dict((name, lab.client(consumer).containers.get(name + "_ambassador").logs(timestamps=True).decode()
                 .splitlines()[-60:]) for name in ("who", "echo"))
    results["replicas"] = {
        "connections": count, "spread": spread, "spread_between": spread_s, "rounds": cfg["replicas_rounds"],
        "failover": dict((name, {"window_median_s": median([r["window_s"] for r in runs]), "runs": runs})
                         for name, runs in windows.items()),
        "rerun_changed": sum(after["changed"].values()), "ambassador_logs": logs, "set_changes": changes,
    }
    lab.write_topology({})
    lab.site()
    lab.up()  # back to bench1..bench3 (bench4 is pruned)


# ---------------------------------------------------------------- disruption

def bench_disruption(cfg, results, lab):
    log("move disruption: a request every 10 ms while the service moves")
    hosts = sorted(lab.hosts)
    consumer = hosts[0]
    out = {}
    for plane, mode in [(p, m) for p in ("socat", "kernel") for m in MODES]:
        windows = []
        runs = []
        for i in range(cfg["disruption_rounds"]):
            src, dst = (hosts[1], hosts[2]) if i % 2 == 0 else (hosts[2], hosts[1])
            service = {"host": src, "port": 7000, "image": lab.vars["lab_client_image"],
                       "command": ["socat", "TCP-LISTEN:7000,fork,reuseaddr", "EXEC:/bin/cat"],
                       "dataplane": plane, "consumers": [consumer]}
            lab.write_topology({"mover": service})
            lab.site()
            probe_ct = lab.run_bench_container(consumer, "bench-probe", lab.vars["lab_client_image"],
                                               ["sleep", "100000"], network="ambassador")
            probe = start_probe(lab, consumer, probe_ct, "mover", 7000, "--seconds", cfg["disruption_seconds"])
            t_probe = time.monotonic()
            time.sleep(3)
            service["host"] = dst
            lab.write_topology({"mover": service})
            t_move = time.monotonic()
            move = lab.site(*MODES[mode])
            t_done = time.monotonic() - t_move
            stdout, _stderr = probe.communicate(timeout=cfg["disruption_seconds"] + 60)
            probe_ct.remove(force=True)
            samples = json.loads(stdout)
            failed = [t for t, ok in samples if not ok]
            window = (failed[-1] - failed[0] + 0.01) if failed else 0.0
            # Requests after the first failure that still failed at the end mean no recovery.
            recovered = bool(samples) and samples[-1][1]
            windows.append(window)
            runs.append({"from": src, "to": dst, "failed_requests": len(failed), "window_s": window,
                         "failed_at_s": failed, "move_started_at_s": t_move - t_probe,
                         "requests": len(samples), "recovered": recovered, "playbook_s": t_done,
                         "move_actions": move["actions"]})
        out["%s, %s" % (plane, mode)] = {"window_median_s": median(windows), "windows_s": windows, "runs": runs}
    results["disruption"] = out


# ---------------------------------------------------------------- scale

PING_PLAYBOOK = """- name: The baseline of the scale section, one ping per host
  hosts: all
  gather_facts: false
  tasks:
    - name: Ping
      ansible.builtin.ping:
"""
# At the largest count, also without what the lab's inventory turns on: pipelining, and SSH ControlPersist
# (ControlPath=none comes before the inventory's ControlMaster=auto, and ssh takes an option's first value).
SSH_VARIANTS = [("no pipelining", {"ansible_pipelining": False, "ansible_ssh_pipelining": False}),
                ("no ControlPersist", {"ansible_ssh_args": "-o ControlMaster=no -o ControlPath=none"})]


def scale_topology(hosts, mover_host, image):
    """Grows with the hosts: each host provides one echo service, consumed by the next two hosts (so each
    host runs one service, its ambassador and two consumer-side ambassadors), plus `mover`, consumed by the
    second host only, on mover_host (the first or the third host): moving it touches the same containers
    whatever the number of hosts."""
    services = {}
    for i, host in enumerate(hosts):
        port = 7300 + i
        services["echo%02d" % i] = {
            "host": host, "port": port, "image": image,
            "command": ["socat", "TCP-LISTEN:%d,fork,reuseaddr" % port, "EXEC:/bin/cat"],
            "consumers": sorted(set(hosts[(i + k) % len(hosts)] for k in (1, 2)) - {host}),
        }
    services["mover"] = {"host": mover_host, "port": 7299, "image": image,
                         "command": ["socat", "TCP-LISTEN:7299,fork,reuseaddr", "EXEC:/bin/cat"],
                         "consumers": [hosts[1]]}
    return services


def memory_used_mib():
    """What the machine's memory in use is (MemTotal - MemAvailable), MiB."""
    with open("/proc/meminfo") as handle:
        info = dict((l.split(":")[0], int(l.split()[1])) for l in handle)
    return (info["MemTotal"] - info["MemAvailable"]) / 1024.0


def scale_inventory(lab, hosts, path):
    """An inventory of the first hosts of the lab (same variables as the lab's own)."""
    data = {"all": {"children": {"lab": {"hosts": dict((h, lab.hosts[h]) for h in hosts), "vars": lab.vars}}}}
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle, default_flow_style=False)


def bench_scale(cfg, results, lab, playbook, workdir):
    counts, most = cfg["scale_hosts"], max(cfg["scale_hosts"])
    names = ["bench%d" % (i + 1) for i in range(most)]
    out = {"hosts": list(counts), "forks": list(cfg["scale_forks"]), "rounds": cfg["scale_rounds"]}
    if cfg["scale_from_nothing"]:
        # From nothing, each time: no engine, namespace, image or state (lab_state=absent first).
        ups = {}
        for hosts in (names[:3], names):
            lab.up(hosts, state="absent")
            memory, busy = memory_used_mib(), cpu_busy_seconds()
            run = lab.up(hosts)
            busy = cpu_busy_seconds() - busy
            ups[len(hosts)] = {"seconds": run["seconds"], "cores_busy": busy / run["seconds"],
                               "memory_added_mib": memory_used_mib() - memory}
        out["lab_up"] = ups
        out["lab_up_ratio"] = ups[most]["seconds"] / ups[3]["seconds"]
    elif sorted(lab.hosts) != names:
        lab.up(names)
    ping = os.path.join(workdir, "ping.yml")
    with open(ping, "w") as handle:
        handle.write(PING_PLAYBOOK)
    runs = {}
    for n in counts:
        hosts = names[:n]
        base = os.path.join(workdir, "scale-%d" % n)
        os.makedirs(os.path.join(base, "topology", "group_vars"), exist_ok=True)
        inventory, topology = os.path.join(base, "inventory.yml"), os.path.join(base, "topology")
        scale_inventory(lab, hosts, inventory)

        def write(mover_host):
            with open(os.path.join(topology, "group_vars", "all.yml"), "w") as handle:
                yaml.safe_dump({"ambassador_services": scale_topology(hosts, mover_host, lab.vars["lab_client_image"])},
                               handle)

        def site(*args):
            return playbook.run(["-i", inventory, "-i", topology, "playbooks/site.yml"] + list(args))
        write(hosts[0])
        memory = memory_used_mib()
        log("scale: converging %d hosts" % n)
        first = site("-f", "25")
        configs = [("forks %d" % f, f, {}) for f in cfg["scale_forks"]]
        if n == most and n > 3:
            configs += [("forks 25, %s" % label, 25, extra) for label, extra in SSH_VARIANTS]
        samples = dict((key, {"ping": [], "noop": [], "changed": []}) for key, _f, _e in configs)
        for _round in range(cfg["scale_rounds"]):
            for key, forks, extra in configs:  # interleaved: ping, no-op, ping, no-op, ...
                log("scale: %d hosts, %s" % (n, key))
                args = ["-f", str(forks)] + (["-e", json.dumps(extra)] if extra else [])
                samples[key]["ping"].append(playbook.run(["-i", inventory, ping] + args)["seconds"])
                noop = site(*args)
                samples[key]["noop"].append(noop["seconds"])
                samples[key]["changed"].append(sum(noop["changed"].values()))
        # One move among n + 1 services: mover goes from the first host to the third and back, each move
        # followed by a no-op run (forks 25: every host at once).
        moves, noops, touched_counts, noops_changed = [], [], [], []
        for i in range(cfg["scale_move_rounds"]):
            write(hosts[2] if i % 2 == 0 else hosts[0])
            before = lab.containers_of(hosts)
            moves.append(site("-f", "25")["seconds"])
            touched_counts.append(sum(len(v) for v in touched(before, lab.containers_of(hosts)).values()))
            noop = site("-f", "25")
            noops.append(noop["seconds"])
            noops_changed.append(sum(noop["changed"].values()))
        entry = {"first_converge_s": first["seconds"], "containers": sum(len(v) for v in lab.containers_of(hosts).values()),
                 "memory_added_by_converge_mib": memory_used_mib() - memory, "samples": samples,
                 "move_s": moves, "noop_after_move_s": noops, "noop_after_move_changed": noops_changed,
                 "move_touched": touched_counts}
        for sample in samples.values():
            p, o = median(sample["ping"]), median(sample["noop"])
            sample.update({"ping_median_s": p, "noop_median_s": o, "ratio": o / p, "noop_per_host_s": o / n,
                           "added_per_host_s": (o - p) / n})
        entry["move_added_s"] = median(moves) - median(noops)
        # The next count's first run replaces these containers; the last ones go with the lab's hosts
        # beyond bench3, and at the end of the run (an empty topology on bench1..bench3).
        runs[n] = entry
    out["runs"] = runs
    if len(counts) > 1:
        out["move_added_ratio"] = runs[most]["move_added_s"] / runs[counts[0]]["move_added_s"]
    results["scale"] = out
    if most > len(BENCH_LAB["lab_hosts"]):
        lab.up()  # back to bench1..bench3 (the others are pruned)


# ---------------------------------------------------------------- table

def fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, float):
        return ("%." + str(digits) + "f") % value
    return str(value)


# The earlier ways of the role's planning that bench/controller.py measured: "env_fact" today; results kept
# from runs before 2026-12-06 measured "plan_fact".
EARLIER_ROLE_PLANNING = (("env_fact", "plan + a set_fact task on every host"),
                         ("plan_fact", "plan + each host's whole plan as a fact"))


def table(results):
    lines = []
    add = lines.append

    def head(title, header, rule):
        """A section's title and its table's header, after a blank line."""
        lines.extend(["", title, header, rule])
    if "planning" in results:
        add("## 1. Planning (plan_topology with full validation, one core)")
        add("| hosts | services | ambassadors | plan s (median) | us/ambassador | plan / json.dumps(plans) | peak MiB |")
        add("|---:|---:|---:|---:|---:|---:|---:|")
        for r in results["planning"]:
            add("| %d | %d | %d | %s | %s | %s | %s |" % (
                r["hosts"], r["services"], r["ambassadors"], fmt(r["plan_s"], 3), fmt(r["us_per_ambassador"], 1),
                fmt(r["ratio_to_serialise"]), fmt(r["peak_mib"], 1)))
    if "controller" in results:
        add("")
        add("## 1b. Controller side in ansible-playbook (no host contacted)")
        add("| hosts x services | playbook | median s | baseline | baseline s | added s | ratio (wall) | ratio (CPU) |")
        add("|---|---|---:|---|---:|---:|---:|---:|")
        for c in results["controller"]:
            m, cpu = c["median"], c["median_cpu"]
            size = "%d x %d" % (c["hosts"], c["services"])
            add("| %s | plan task (once) | %s | start-up (one debug) | %s | %s | %s | %s |" % (
                size, fmt(m["plan_task"]), fmt(m["startup"]), fmt(c["plan_task_added_s"]), fmt(c["plan_task_ratio"]),
                fmt(cpu["plan_task"] / cpu["startup"])))
            add("| %s | role planning (plan + one delegate_facts task) | %s | one trivial fact per host | %s | %s | %s | %s |" % (
                size, fmt(m["role_plan"]), fmt(m["per_host_fact"]), fmt(c["role_plan_added_s"]),
                fmt(c["role_plan_ratio"]), fmt(c["role_plan_cpu_ratio"])))
            # A result kept from an earlier run (keep_earlier) names the earlier way it measured.
            for way, what in EARLIER_ROLE_PLANNING:
                if way in m:
                    add("| %s | earlier role planning (%s) | %s | one trivial fact per host | %s | %s | %s | %s |" % (
                        size, what, fmt(m[way]), fmt(m["per_host_fact"]), fmt(m[way] - m["per_host_fact"]),
                        fmt(c[way + "_ratio"]), fmt(c[way + "_cpu_ratio"])))
    if "apply" in results:
        a = results["apply"]
        add("")
        add("## 2-3. Apply on the lab: %d hosts, %d services, %d containers" % (a["hosts"], a["services"], a["containers"]))
        add("| run | median s | baseline | baseline s | ratio | changed / touched |")
        add("|---|---:|---|---:|---:|---|")
        add("| no-op site.yml | %s | naive: one docker task per container | %s | naive/no-op %s | changed=%s (naive %s) |" % (
            fmt(a["noop_median_s"]), fmt(a["naive_median_s"]), fmt(a["naive_over_noop"]),
            max(a["checks"]["noop_changed"]), max(a["checks"]["naive_changed"])))
        touched_counts = [t["containers"] for t in a["checks"]["move_touched"]]
        for mode in MODES:
            add("| move 1 of %d services, %s | %s | no-op site.yml | %s | move/no-op %s | %s containers, only that service: %s |" % (
                a["services"], mode, fmt(a["move_median_s"][mode]), fmt(median(a["noop_s"] + a["noop_after_move_s"])),
                fmt(a["move_over_noop"][mode]), "/".join(map(str, touched_counts)),
                all(a["checks"]["move_only_that_service"])))
    if "datapath" in results:
        d = results["datapath"]
        head("## 4. Data path: redis-benchmark -c 50 SET/GET, bench1 -> redis on bench2 (medians)",
             "| path | pipeline | SET rps | x direct | GET rps | x direct | SET p50/p99 ms | GET p50/p99 ms | max ms | CPU us/req | cores busy |",
             "|---|---:|---:|---:|---:|---:|---|---|---:|---:|---:|")
        for key in sorted(d["summary"], key=lambda k: (-int(k.split(" P")[1]), list(REDIS_PORTS).index(k.split(" P")[0]))):
            e = d["summary"][key]
            path, p = key.split(" P")
            if "SET" not in e:
                add("| %s | %s | failed (%d errors) | | | | | | | | |" % (path, p, e["errors"]))
                continue
            s, g = e["SET"], e["GET"]
            add("| %s | %s | %.0f | %s | %.0f | %s | %s / %s | %s / %s | %s | %s | %s |" % (
                path, p, s["rps"], fmt(s.get("ratio_to_direct")), g["rps"], fmt(g.get("ratio_to_direct")),
                fmt(s["p50_ms"]), fmt(s["p99_ms"]), fmt(g["p50_ms"]), fmt(g["p99_ms"]),
                fmt(max(s["max_ms"], g["max_ms"]), 0), fmt(e["cpu_us_per_request"], 1), fmt(e["cores_busy"])))
    if "disruption" in results:
        head("## 5. Move disruption: a request every 10 ms through the ambassador while the service moves",
             "| data plane, how applied | window of failed requests s (median) | windows s | failed requests | move playbook s |",
             "|---|---:|---|---|---|")
        for plane, e in results["disruption"].items():
            add("| %s | %s | %s | %s | %s |" % (plane, fmt(e["window_median_s"]), ", ".join(fmt(w) for w in e["windows_s"]),
                                                ", ".join(str(r["failed_requests"]) for r in e["runs"]),
                                                ", ".join(fmt(r["playbook_s"], 1) for r in e["runs"])))
    if "replicas" in results:
        r = results["replicas"]
        head("## 6b. Replicas: echo on bench2-4 (round robin), a fresh connection every 20 ms from bench1, bench4 fails",
             "| failure of bench4 | failed requests stop after s (median) | each round s | failed requests |",
             "|---|---:|---|---|")
        for name, e in r["failover"].items():
            rounds = ", ".join(fmt(x["window_s"]) for x in e["runs"])
            failed = ", ".join(str(x["failed_requests"]) for x in e["runs"])
            add("| %s | %s | %s | %s |" % (name, fmt(e["window_median_s"]), rounds, failed))
        add("")
        add("| %d new connections to who | %s | rerun after the failures: changed=%d |" % (
            r["connections"], ", ".join("%s %d" % kv for kv in sorted(r["spread"].items())), r["rerun_changed"]))
        if r.get("set_changes"):
            add("")
            add("| change of echo's replicas, a connection held open | bench1's ambassador | failed requests | requests "
                "| site.yml s |")
            add("|---|---|---:|---:|---:|")
            for c in r["set_changes"]:
                add("| %s | %s | %d | %d | %s |"
                    % (c["change"], c["how"], c["failed_requests"], c["requests"], fmt(c["playbook_s"], 1)))
    if "scale" in results:
        sc = results["scale"]
        add("")
        add("## 6. Scale: no-op site.yml over SSH on lab hosts (each provides one echo service, consumed by the next two)")
        if "lab_up" in sc:
            add("| lab up from nothing | s | cores busy | memory added MiB | per host MiB |")
            add("|---|---:|---:|---:|---:|")
            for n, up in sorted(sc["lab_up"].items(), key=lambda kv: int(kv[0])):
                add("| %s hosts | %s | %s | %.0f | %.0f |" % (
                    n, fmt(up["seconds"], 1), fmt(up["cores_busy"]), up["memory_added_mib"], up["memory_added_mib"] / int(n)))
            add("| ratio %s / 3 hosts | %s | | | |" % (max(sc["hosts"]), fmt(sc["lab_up_ratio"])))
            add("")
        add("| hosts | forks | ping s | no-op s | no-op / ping | no-op s per host | (no-op - ping) s per host | changed |")
        add("|---:|---|---:|---:|---:|---:|---:|---:|")
        for n, entry in sorted(sc["runs"].items(), key=lambda kv: int(kv[0])):
            # By forks, then the SSH variants (the JSON keeps the keys sorted by name).
            for key, sample in sorted(entry["samples"].items(), key=lambda kv: (int(kv[0].split()[1].rstrip(",")), kv[0])):
                add("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    n, key.replace("forks ", ""), fmt(sample["ping_median_s"]), fmt(sample["noop_median_s"]),
                    fmt(sample["ratio"]), fmt(sample["noop_per_host_s"], 3), fmt(sample["added_per_host_s"], 3),
                    max(sample["changed"])))
        add("")
        add("| hosts | move s (median) | no-op after it s | added s | containers touched |")
        add("|---:|---:|---:|---:|---|")
        for n, entry in sorted(sc["runs"].items(), key=lambda kv: int(kv[0])):
            add("| %s | %s | %s | %s | %s |" % (
                n, fmt(median(entry["move_s"])), fmt(median(entry["noop_after_move_s"])), fmt(entry["move_added_s"]),
                "/".join(map(str, entry["move_touched"]))))
        if "move_added_ratio" in sc:
            add("| added at %s / added at %s hosts | | | %s | |" % (max(sc["hosts"]), min(sc["hosts"]), fmt(sc["move_added_ratio"])))
    return "\n".join(lines)


def keep_earlier(results, path):
    """The sections of the file at path that this run did not measure stay, with when and where they were
    measured (results["earlier"]: section -> started, machine, mode)."""
    try:
        with open(path) as handle:
            old = json.load(handle)
    except (OSError, ValueError):
        return
    if old.get("mode") != results["mode"]:
        return
    earlier = dict((k, v) for k, v in old.get("earlier", {}).items() if k not in results["sections"])
    for section in SECTIONS:
        if section in old and section not in results["sections"]:
            results[section] = old[section]
            earlier.setdefault(section, dict((k, old.get(k)) for k in ("started", "machine", "seconds")))
    if earlier:
        results["earlier"] = earlier


def machine():
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as handle:
            info["cpu"] = next((l.split(":", 1)[1].strip() for l in handle if l.startswith("model name")), None)
        with open("/proc/loadavg") as handle:
            info["loadavg_at_start"] = handle.read().split()[:3]
    except OSError:
        pass
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: proves the harness works (CI)")
    parser.add_argument("--json", help="where to write the results (default bench/results/latest.json or quick.json)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    args = parser.parse_args(argv)
    cfg = dict((key, sizes[1 if args.quick else 0]) for key, sizes in SIZES.items())
    sections = args.only or list(SECTIONS)
    path = args.json or os.path.join(HERE, "results", "quick.json" if args.quick else "latest.json")

    results = {"mode": "quick" if args.quick else "full", "machine": machine(),
               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "sections": sections}
    workdir = tempfile.mkdtemp(prefix="crosshost-bench-")
    start = time.perf_counter()
    try:
        playbook = Playbook(workdir)
        if "planning" in sections:
            bench_planning(cfg, results)
        if "controller" in sections:
            bench_controller(cfg, results, playbook, workdir)
        lab_sections = [s for s in ("apply", "datapath", "disruption", "replicas", "scale") if s in sections]
        if lab_sections:
            lab = BenchLab(playbook, workdir)
            if lab_sections != ["scale"] or not cfg["scale_from_nothing"]:
                lab.up()
            if "apply" in sections:
                bench_apply(cfg, results, lab)
            if "datapath" in sections:
                bench_datapath(cfg, results, lab)
            if "disruption" in sections:
                bench_disruption(cfg, results, lab)
            if "replicas" in sections:
                bench_replicas(cfg, results, lab)
            if "scale" in sections:
                bench_scale(cfg, results, lab, playbook, workdir)
            lab.write_topology({})
            lab.site()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results["seconds"] = time.perf_counter() - start
    keep_earlier(results, path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # Written before the table is drawn as well, so that no drawing error loses what was measured.
    for step in ("measured", "table"):
        if step == "table":
            results["table"] = table(results)
        with open(path, "w") as handle:
            json.dump(results, handle, indent=1, sort_keys=True)
    print(results["table"])
    print("\n(%s mode, %.0f s; JSON: %s)" % (results["mode"], results["seconds"], path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
