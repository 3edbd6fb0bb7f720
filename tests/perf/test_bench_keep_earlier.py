"""bench/run --only SECTION keeps the other sections of the JSON file it writes, saying when they were measured."""

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = importlib.util.spec_from_file_location("bench_run", os.path.join(ROOT, "bench", "run.py"))
bench_run = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench_run)


def test_a_run_of_some_sections_keeps_the_others_with_their_date(tmp_path):
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"mode": "full", "started": "T1", "machine": {"cpus": 2}, "seconds": 10,
                                "sections": ["apply", "scale"], "apply": {"a": 1}, "scale": {"old": 1}}))
    results = {"mode": "full", "started": "T2", "sections": ["scale"], "scale": {"new": 1}}
    bench_run.keep_earlier(results, str(path))
    assert results["apply"] == {"a": 1} and results["scale"] == {"new": 1}
    assert results["earlier"] == {"apply": {"started": "T1", "machine": {"cpus": 2}, "seconds": 10}}
    # Run again on that file: apply keeps the date of its own run, not of the run that kept it.
    path.write_text(json.dumps(dict(results, started="T2")))
    again = {"mode": "full", "started": "T3", "sections": ["scale"], "scale": {"newer": 1}}
    bench_run.keep_earlier(again, str(path))
    assert again["earlier"]["apply"]["started"] == "T1"


def test_a_quick_run_keeps_nothing_of_a_full_one(tmp_path):
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"mode": "full", "sections": ["apply"], "apply": {"a": 1}}))
    results = {"mode": "quick", "sections": ["scale"]}
    bench_run.keep_earlier(results, str(path))
    assert "apply" not in results and "earlier" not in results


def test_the_table_draws_a_controller_result_kept_from_either_earlier_way():
    def controller(way):
        median = {"plan_task": 2.0, "startup": 1.0, "role_plan": 3.0, "per_host_fact": 4.0, way: 8.0}
        return {"hosts": 10, "services": 2, "median": median, "median_cpu": dict(median),
                "plan_task_added_s": 1.0, "plan_task_ratio": 2.0, "role_plan_added_s": -1.0,
                "role_plan_ratio": 0.75, "role_plan_cpu_ratio": 0.75, way + "_ratio": 2.0, way + "_cpu_ratio": 2.5}
    for way, what in bench_run.EARLIER_ROLE_PLANNING:
        drawn = bench_run.table({"controller": [controller(way)]})
        row = [line for line in drawn.splitlines() if "earlier role planning" in line]
        assert len(row) == 1 and what in row[0]
        cells = [cell.strip() for cell in row[0].split("|")]
        assert cells[3] == bench_run.fmt(8.0) and cells[-2] == bench_run.fmt(2.5)
