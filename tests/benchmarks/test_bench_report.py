"""The benchmark driver's checks and the Targets table of RESULTS.md, on small made-up results."""
from __future__ import annotations

import json

from benchmarks import report, run


def _smoke_result(speedup=1.2, traced=(True, False, False, False), within=True, same_best=True):
    records = [{"kind": "train", "status": "ok", "worker": 0, "pid": 7, "arch": "a1", "traced": t,
                "model_id": f"m{i}", "start": i, "end": i + 1} for i, t in enumerate(traced)]
    per = {"m0": {"within_2x_spread": within}, "m1": {"within_2x_spread": True}}
    return {"summary": {"speedup": speedup},
            "accuracy": {"same_best": same_best, "best_seq": "m0", "best_mop": "m0" if same_best else "m1",
                         "per_config": per},
            "mop": {"records": records},
            "metrics": {"traces": {"max": sum(traced)}}}


def test_smoke_checks_pass_on_good_results_and_name_each_failure():
    assert run.smoke_checks(_smoke_result()) == []
    problems = run.smoke_checks(_smoke_result(speedup=0.4, traced=(True, True, True), within=False,
                                              same_best=False))
    text = "\n".join(problems)
    assert "speed-up over sequential 0.40 < 0.60" in text
    assert "best config differs" in text
    assert "['m0']" in text                       # the config outside 2 × the spread
    assert "traces per architecture per worker 3 > 2" in text


def test_smoke_checks_require_the_traced_flag_on_every_train_hop():
    res = _smoke_result()
    del res["mop"]["records"][1]["traced"]
    assert any("1 of 4 train hop records lack" in p for p in run.smoke_checks(res))


def test_simulated_cost_aware_order_is_not_slower_than_fixed_at_w8():
    sim, problems = run.simulate_check(workers=8, seeds=2)
    assert problems == []
    assert len(sim["cases"]) == 4
    assert all(c["cost_aware_makespan"] <= c["fixed_makespan"] for c in sim["cases"])


def test_a_failing_script_step_is_recorded_and_does_not_raise(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "RESULTS", tmp_path)
    monkeypatch.setattr(run, "LOGS", tmp_path / "logs")
    monkeypatch.setitem(run.SCRIPTS, "hetero", (["benchmarks.no_such_module"], 60))
    step = run.run_script("hetero")
    assert step["status"] == "failed" and step["error"].startswith("exit 1")
    assert "No module named benchmarks.no_such_module" in step["log_tail"]
    assert len(step["loadavg_start"]) == 3 and len(step["loadavg_end"]) == 3


def test_targets_table_judges_each_result_and_reports_failed_steps():
    hetero = {"workers": 2, "rows": 100, "runs": {
        "fixed": {"ratio_learned": 1.20, "makespan_learned_s": 120.0},
        "cost_aware": {"ratio_learned": 1.04, "makespan_learned_s": 100.0}}}
    hop = {"levels": [{"workers": 256, "units_per_s": 300.0, "rtt_p50_ms": 1.0, "rtt_p99_ms": 5.0, "connected": 256}]}
    ui = {"configs": 50, "epochs": 20, "pages": {"index": {"median_s": 0.1, "max_s": 0.2},
                                                 "gantt": {"median_s": 1.5, "max_s": 1.9}}}
    cdl = {"cerebro_ops": {"train_s": 10.0, "total_s": 20.0},
           "cerebro_dl": {"status": "ok", "train_s": 150.0, "fit_s": 100.0}}
    bench = {"steps": [{"step": "airflow_real", "status": "failed", "error": "exit 1"}]}
    rows = report.targets({}, {"hetero": hetero, "hop_server_load": hop, "ui_load": ui, "cerebro_dl": cdl,
                               "bench_full": bench})
    real = next((m, v) for l, s, m, v in rows if s == "hetero" and "lower bound" in l)
    assert real[1] == report.MET and "1.040 (fixed order 1.200)" in real[0]
    gain = next((m, v) for l, s, m, v in rows if s == "hetero" and "gain" in l)
    assert "1.20×" in gain[0] and gain[1].startswith(report.MET)
    hs = next((m, v) for l, s, m, v in rows if s == "hop_server_load")
    assert hs[0].startswith("300 units/s") and hs[1] == report.MET
    u = next((m, v) for l, s, m, v in rows if s == "ui_load")
    assert "slowest: gantt 1.50 s" in u[0] and u[1] == report.NOT_MET
    c = next((m, v) for l, s, m, v in rows if s == "cerebro_dl")
    assert c[0].startswith("15.0×") and c[1] == report.MET
    af = next(v for l, s, m, v in rows if s == "airflow_real")
    assert af == f"{report.NONE} (step `airflow_real` failed: exit 1)"
    ff = [v for l, s, m, v in rows if s == "flights_full"]
    assert ff and all(v == f"{report.NONE} (no results/flights_full.json)" for v in ff)


def test_report_writes_a_targets_table_from_the_json_files(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS", tmp_path)
    monkeypatch.setattr(report, "HERE", tmp_path)
    (tmp_path / "hop_server_load.json").write_text(json.dumps(
        {"seconds_per_level": 1, "levels": [{"workers": 256, "models": 512, "units": 10, "units_per_s": 100.0,
                                             "rtt_p50_ms": 1.0, "rtt_p99_ms": 2.0, "handshake_p50_ms": 1.0,
                                             "connected": 256, "missed_wakes": 0}],
         "bench_step": {"started": "2026-01-01 00:00:00 UTC", "wall_s": 5, "loadavg_start": [0.5, 0, 0],
                        "loadavg_end": [1.5, 0, 0]}}))
    text = report.write_results_md().read_text()
    line = next(l for l in text.splitlines() if l.startswith("| hop server"))
    assert "100 units/s" in line and "load 0.50 → 1.50" in line and report.NOT_MET in line
    assert "## Hop server load" in text
