"""Planning at scale: the pure planner on synthetic topologies, in a child process on one core.

Run by bench/run.py; can be run alone: python bench/planning.py HOSTS SERVICES [REPEAT]
Prints one JSON object: plan and serialise times (interleaved), ambassadors, peak memory.
"""

import gc
import json
import os
import resource
import statistics
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, ".venv", "collections"))

from ansible_collections.crosshost.ambassador.plugins.module_utils._plan import plan_topology  # noqa: E402

CONSUMED_PER_HOST = 10


def synthetic(n_hosts, n_services, consumed=CONSUMED_PER_HOST):
    """n_hosts hosts, n_services services spread over them, each host consuming `consumed` services."""
    names = ["h%05d" % i for i in range(n_hosts)]
    step = max(1, n_services // consumed)
    hosts = {}
    for i, name in enumerate(names):
        hosts[name] = {
            "advertise_address": "10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255 or 1),
            "consumes": ["s%04d" % ((i + k * step) % n_services) for k in range(min(consumed, n_services))],
        }
    services = dict(("s%04d" % j, {"host": names[(j * 7) % n_hosts], "port": 10000 + j})
                    for j in range(n_services))
    return services, hosts


def measure(n_hosts, n_services, repeat):
    services, hosts = synthetic(n_hosts, n_services)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    plan_s, dump_s = [], []
    plans = None
    for _round in range(repeat):
        plans = None
        gc.collect()
        start = time.perf_counter()
        plans = plan_topology(services, hosts)
        plan_s.append(time.perf_counter() - start)
        # Baseline, side by side: serialising the same plans (what Ansible does with them next).
        start = time.perf_counter()
        json.dumps(plans)
        dump_s.append(time.perf_counter() - start)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ambassadors = sum(1 for p in plans.values() for c in p["containers"] if c["kind"] == "ambassador")
    consumer_side = sum(1 for p in plans.values() for c in p["containers"] if c.get("side") == "consumer")
    plans = None
    gc.collect()
    tracemalloc.start()
    plan_topology(services, hosts)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        "hosts": n_hosts,
        "services": n_services,
        "consumed_per_host": CONSUMED_PER_HOST,
        "ambassadors": ambassadors,
        "consumer_ambassadors": consumer_side,
        "plan_s": statistics.median(plan_s),
        "plan_s_all": plan_s,
        "serialise_s": statistics.median(dump_s),
        "peak_mib": peak / 2.0 ** 20,
        "maxrss_growth_mib": (rss_after - rss_before) / 1024.0,
    }


def main(argv):
    n_hosts, n_services = int(argv[1]), int(argv[2])
    repeat = int(argv[3]) if len(argv) > 3 else 3
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})  # one core
    except (AttributeError, OSError):
        pass
    print(json.dumps(measure(n_hosts, n_services, repeat)))


if __name__ == "__main__":
    main(sys.argv)
