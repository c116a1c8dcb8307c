"""bench/bench.py's report, from canned figures: each run's figures and the ratio within each
run are printed under the medians (the bench itself runs in the smoke run of the test
command, with one run, where there is nothing per run to print); its arguments checked."""
import importlib.util
import os
import subprocess
import sys
import types

HERE = os.path.dirname(os.path.abspath(__file__))


def load_bench():
    spec = importlib.util.spec_from_file_location(
        "bench", os.path.join(HERE, "..", "..", "bench", "bench.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def accept_run(rps, p99=10.0):
    return {"rps": rps, "p50_ms": 1.0, "p99_ms": p99, "non2xx": 0, "lost": 0, "svc_us": 50.0,
            "recv_us": 25.0, "gen_us": 20.0, "busy": 0.9}


def e2e_run(per_s):
    return {"completed_per_s": per_s, "accept_rps": per_s, "svc_us": 50.0, "recv_us": 25.0,
            "gen_us": 20.0, "busy": 0.9}


def burst_run(submit, all_cb, retried=0):
    return {"ok_2xx": 1000, "non2xx": 0, "submit_s": submit, "all_callbacks_s": all_cb,
            "lost": 0, "duplicates": 0, "peak_rss_mb": 40.0, "retried": retried}


def canned():
    accept = {"sqlite": [accept_run(20000), accept_run(15000), accept_run(18000)],
              "memory": [accept_run(24000), accept_run(30000), accept_run(26000)],
              "reference": [accept_run(200), accept_run(300), accept_run(250)],
              "floor": [accept_run(40000), accept_run(60000), accept_run(50000)]}
    return {"accept_c64": accept, "accept_c256": {},
            "burst": {"sqlite": [burst_run(3.0, 6.0), burst_run(2.5, 5.75), burst_run(3.25, 6.5, 12)]},
            "inflight": {},
            "e2e_c64": {"sqlite": [e2e_run(15000), e2e_run(21000), e2e_run(18000)],
                        "memory": [e2e_run(20000), e2e_run(28000), e2e_run(24000)]},
            "e2e_c256": {}, "machine": {},
            "aged": {"tasks": 2000000, "fill_s": 21.4, "db_mb": 612.3,
                     "empty": [accept_run(25000), accept_run(20000), accept_run(24000)],
                     "aged": [accept_run(12500, 80.0), accept_run(15000, 60.0),
                              accept_run(12000, 90.0)]}}


def test_report_prints_each_run_and_its_ratios():
    bench = load_bench()
    text = bench.report(canned(), types.SimpleNamespace(runs=3, seconds=10, latency="1-3"))
    lines = text.splitlines()
    # medians: sqlite 18,000, floor 50,000, reference 250; each run's ratio beside them
    assert "sqlite/floor = 0.36 (runs 0.50 / 0.25 / 0.36)" in text
    assert "sqlite/reference = 72x (runs 100x / 50x / 72x)" in text
    assert "memory/floor = 0.52 (runs 0.60 / 0.50 / 0.52)" in text
    assert ("runs, in turn (req/s): sqlite 20,000 / 15,000 / 18,000; memory 24,000 / 30,000 / "
            "26,000; reference 200 / 300 / 250; floor 40,000 / 60,000 / 50,000") in lines
    assert "the last callback after the last submission, each run: sqlite +3.00 / +3.25 / +3.25 s" in lines
    assert "callbacks retried (a failed attempt made again), each run: sqlite 0 / 0 / 12" in lines
    assert any(line.startswith("exchanged --store sqlite (FULL)    18,000 completed tasks/s, "
                               "runs 15,000 / 21,000 / 18,000 (") for line in lines)
    assert "sqlite/memory, each run: 0.75 / 0.75 / 0.75" in lines
    # the aged database beside an empty one, each run's ratio
    assert "2,000,000 tasks ended, 612 MB          12,500     1.00    80.00       0" in lines
    assert "aged/empty, each run: 0.50 / 0.75 / 0.50 (filled in 21 s, each run on a fresh copy)" in lines


def test_report_of_one_run_has_no_per_run_lines():
    bench = load_bench()
    results = canned()
    del results["aged"]  # a raw file from before the part: nothing printed for it
    for table in ("accept_c64", "burst", "e2e_c64"):
        for system in results[table]:
            results[table][system] = results[table][system][:1]
    text = bench.report(results, types.SimpleNamespace(runs=1, seconds=1, latency="0.2-0.4"))
    assert "sqlite/floor = 0.50, sqlite/reference = 100x" in text
    assert "runs" not in text.replace("(median of 1)", "")
    assert "sqlite/memory, each run" not in text


def test_arguments_checked_with_a_clear_error():
    """A part misspelt in --only would have run nothing and printed an empty table; a count
    of 0 would have divided by it. Each is refused before anything starts."""
    bench = os.path.join(HERE, "..", "..", "bench", "bench.py")
    for args, said in ((["--only", "accept,acept"], "unknown part acept; expected some of "
                                                    "accept,burst,inflight,e2e,aged"),
                       (["--aged", "100000001"], "--aged: at most 100,000,000 tasks"),
                       (["--only", ","], "unknown part (none given)"),
                       (["--runs", "0"], "--runs: expected a number greater than 0, got '0'"),
                       (["--settle", "soon"], "--settle: expected a number, got 'soon'")):
        r = subprocess.run([sys.executable, bench] + args, capture_output=True, text=True,
                           timeout=30)
        assert r.returncode == 2, (args, r.stderr)
        assert said in r.stderr, (args, r.stderr)
    mod = load_bench()
    assert mod.parts("e2e, accept") == ["accept", "e2e"]  # in the bench's order
    assert mod.positive(float)("0.5") == 0.5
