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
