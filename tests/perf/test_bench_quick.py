"""The benchmark harness still works: bench/run.py --quick on the bench's own lab, and its JSON is
complete and sane. Not a timed test: no figure is compared with a target here."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_quick_benchmark_runs_and_reports_every_section(tmp_path):
    out = tmp_path / "quick.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--quick", "--json", str(out)],
                          cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                          timeout=1500, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:]
    results = json.loads(out.read_text())
    assert results["mode"] == "quick"
    assert results["table"] in proc.stdout

    for row in results["planning"]:
        assert row["plan_s"] > 0 and row["serialise_s"] > 0 and row["peak_mib"] > 0
        # Every host consumes 10 services: one consumer-side ambassador each unless it provides it.
        assert 0.8 * row["hosts"] * 10 <= row["consumer_ambassadors"] <= row["hosts"] * 10

    assert results["controller"]
    for controller in results["controller"]:
        for measure in ("median", "median_cpu"):
            assert set(controller[measure]) == {"startup", "plan_task", "per_host_fact", "role_plan", "env_fact"}
            assert all(v > 0 for v in controller[measure].values())

    apply = results["apply"]
    assert apply["checks"]["noop_changed"] == [0] and apply["checks"]["naive_changed"] == [0]
    assert all(apply["checks"]["move_only_that_service"])
    # A move recreates the consumer-side ambassadors and moves the service and its provider-side one.
    assert all(t["containers"] >= 3 for t in apply["checks"]["move_touched"])
    assert apply["naive_median_s"] > 0 and apply["noop_median_s"] > 0
    assert all(apply["move_median_s"][mode] > 0 for mode in ("make-before-break", "one step"))
    # Every run first decides on each host (changing nothing). Then make-before-break takes the three
    # apply steps, one after the other on every host (the bench's services keep no data: no stop step);
    # one step takes one.
    steps = apply["checks"]["move_apply_steps"]
    assert steps["make-before-break"] and set(steps["make-before-break"]) == {4}, steps
    assert steps["one step"] and set(steps["one step"]) == {2}, steps

    summary = results["datapath"]["summary"]
    paths = ("direct", "socat_classic", "socat", "socat_2_consumers", "kernel", "kernel_2_replicas")
    assert set(summary) == set("%s P%d" % (path, p) for path in paths for p in (1, 16))
    for key, entry in summary.items():
        assert entry["errors"] == 0, (key, results["datapath"]["samples"])
        for op in ("SET", "GET"):
            assert entry[op]["rps"] > 0 and 0 < entry[op]["p50_ms"] <= entry[op]["p99_ms"]

    for key in ("socat, make-before-break", "socat, one step", "kernel, make-before-break", "kernel, one step"):
        runs = results["disruption"][key]["runs"]
        assert runs and all(r["recovered"] and r["requests"] > 100 for r in runs), runs

    replicas = results["replicas"]
    # Every replica answered some of the new connections; after each failure the requests were answered again
    # (all but a few late ones: README, What misses), and the rerun after them had nothing to do.
    assert set(replicas["spread"]) == {"bench2", "bench3", "bench4"} and all(replicas["spread"].values()), replicas
    assert sum(replicas["spread"].values()) == replicas["connections"]
    for name in ("link cut", "engine stopped", "service container killed"):
        runs = replicas["failover"][name]["runs"]
        assert runs and all(r["ok_share_at_end"] >= 0.9 and r["requests"] > 50 and r["failed_before_hit"] == 0
                            for r in runs), runs
    assert replicas["rerun_changed"] == 0
    # A replica set change delivered to bench1's running ambassador cut no request of the connection held open
    # to bench2; recreating that ambassador (the baseline) is what the other rows did.
    changes = replicas["set_changes"]
    assert [(c["how"], c["change"]) for c in changes] == [
        ("delivered", "bench4 removed"), ("delivered", "bench4 added"),
        ("recreated", "bench4 removed"), ("recreated", "bench4 added")], changes
    for change in changes:
        assert change["requests"] > 100, change
        if change["how"] == "delivered":
            assert change["failed_requests"] == 0 and change["actions"]["bench1"] == [["deliver", "echo_ambassador"]], change
        else:
            assert ["recreate", "echo_ambassador"] in change["actions"]["bench1"], change

    scale = results["scale"]
    runs = scale["runs"]
    assert set(runs) == {"3"}, runs
    sample = runs["3"]["samples"]["forks 5"]
    assert sample["changed"] == [0] and runs["3"]["noop_after_move_changed"] == [0]
    assert 0 < sample["ping_median_s"] and 0 < sample["noop_median_s"]
    # The move takes the mover, its provider-side ambassador (on the host it leaves and the one it goes to)
    # and its one consumer-side ambassador: nothing of the echo services.
    assert runs["3"]["move_touched"] == [5], runs["3"]
    assert runs["3"]["containers"] >= 3 * 4
