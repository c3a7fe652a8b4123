"""The benchmark driver's checks and the Targets table of RESULTS.md, on small made-up results."""
from __future__ import annotations

import json

import pytest

from benchmarks import report, run


def _smoke_result(speedup=1.2, traced=(True, False, False, False), overlap=True, near=True, own=1.3, share=0.45):
    records = [{"kind": "train", "status": "ok", "worker": 0, "pid": 7, "arch": "a1", "traced": t,
                "model_id": f"m{i}", "start": i, "end": i + 1} for i, t in enumerate(traced)]
    wide = {"spread": 0.01}
    per = {"m0": {"overlap": overlap, "gap": 0.0 if overlap else 0.05, "mop": wide, "seq": wide},
           "m1": {"overlap": True, "gap": 0.0, "mop": wide, "seq": wide}}
    return {"summary": {"speedup": speedup, "speedup_own": own, "training_share": share},
            "seed_spreads": {"best_within_spread": near, "best_seq": "m0", "best_mop": "m0" if near else "m1",
                             "per_config": per},
            "mop": {"records": records},
            "metrics": {"traces": {"max": sum(traced)}}}


def test_smoke_checks_pass_on_good_results_and_name_each_failure():
    assert run.smoke_checks(_smoke_result()) == []
    problems = run.smoke_checks(_smoke_result(speedup=0.3, traced=(True, True, True), overlap=False, near=False,
                                              own=0.1, share=0.1))
    text = "\n".join(problems)
    assert "speed-up over Keras fit sequential 0.30 < 0.40" in text
    assert "speed-up over its own loop sequential 0.10 < 0.15" in text
    assert "training share 0.10 < 0.12" in text
    assert "best config differs beyond the spread" in text
    assert "further from the sequential loop's than either range is wide: ['m0']" in text
    assert "traces per architecture per worker 3 > 2" in text


def test_smoke_checks_require_the_traced_flag_on_every_train_hop():
    res = _smoke_result()
    del res["mop"]["records"][1]["traced"]
    assert any("1 of 4 train hop records lack" in p for p in run.smoke_checks(res))


def test_seed_spreads_overlap_and_best_config():
    from benchmarks.analysis import seed_spreads

    mop = {0: {"a": 0.50, "b": 0.40}, 1: {"a": 0.52, "b": 0.41}}
    seq = {0: {"a": 0.51, "b": 0.45}, 1: {"a": 0.53, "b": 0.46}}
    sp = seed_spreads(mop, seq)
    assert sp["per_config"]["a"]["overlap"] and not sp["per_config"]["b"]["overlap"]
    assert sp["n_overlap"] == 1 and sp["same_best"] and sp["best_within_spread"]
    assert sp["per_config"]["b"]["mop"]["spread"] == pytest.approx(0.01)
    far = seed_spreads({0: {"a": 0.3, "b": 0.4}}, {0: {"a": 0.5, "b": 0.4}, 1: {"a": 0.6, "b": 0.41}})
    assert far["best_mop"] == "a" and far["best_seq"] == "b" and not far["best_within_spread"]


def test_headline_targets_read_prepare_speed_and_the_workload_summaries():
    prep = {"results": [{"workload": "flights_20k", "phases": {"prepare": {"s": 6.0}, "partition": {"s": 1.5}}},
                        {"workload": "flights_full", "phases": {"prepare": {"s": 20.0}, "partition": {"s": 2.0}}}]}
    ff = {"summary": {"training_share": 0.9, "efficiency": 0.9, "speedup_own": 1.5, "makespan_s": 10.0,
                      "T_own_seq": 15.0, "task_parallel_speedup_own": 1.9, "share_of_task_parallel": 0.79,
                      "speedup": 3.0, "hop_overhead_s": 0.015, "e2e_over_forloop": 0.8, "study_wall_s": 40.0,
                      "forloop_s": 50.0, "e2e_on_server_s": 20.0, "e2e_on_server_over_forloop": 0.4},
          "metrics": {"sum_train_s": 18.0, "workers": 2, "per_warm_hop": {"n": 40}},
          "mop": {"on_server": {"wall_s": 20.0, "first_wall_s": 35.0, "server_start_s": 3.0}}}
    rows = {r[0]: r for r in report.headline_rows({"flights_full": ff}, {"prepare_speed": prep})}
    share = next(r for k, r in rows.items() if k.startswith("flights_full training share"))
    assert share[2] == "0.40" and share[3].startswith("0.90") and share[4] == report.MET
    own = next(r for k, r in rows.items() if k.startswith("MOP (W = 2)"))
    assert own[3].startswith("1.50×") and "MOP = 79% of it" in own[3] and own[4] == report.NOT_MET
    hop = next(r for k, r in rows.items() if k.startswith("non-training"))
    assert hop[3].startswith("15 ms") and hop[4] == report.MET
    p20 = next(r for k, r in rows.items() if "20k rows" in k and k.startswith("prepare"))
    assert p20[3].startswith("7.5 s") and p20[4] == report.MET
    pfull = next(r for k, r in rows.items() if "flights_full" in k and k.startswith("prepare"))
    assert pfull[3].startswith("22.0 s") and pfull[4] == report.NOT_MET
    e2e = next(r for k, r in rows.items() if "flights_full" in k and k.startswith("end to end"))
    assert e2e[3].startswith("0.80×") and e2e[4] == report.NOT_MET
    on_server = next(r for k, r in rows.items() if "flights_full" in k and "Connect server" in k)
    assert on_server[3].startswith("0.40× (20.0 s vs 50.0 s; the server's first study 35.0 s")
    assert on_server[4] == report.MET
    on_server_20k = next(r for k, r in rows.items() if "20k rows" in k and "Connect server" in k)
    assert on_server_20k[3] == "–"
    cnn = next(r for k, r in rows.items() if k.startswith("CNN"))
    assert cnn[3] == "–" and cnn[4].startswith(report.NONE)


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
    head = [r[4] for r in report.headline_rows({}, {"bench_full": bench}) if r[1] == "airflow_real"]
    assert head == [f"{report.NONE} (step `airflow_real` failed: exit 1)"]


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


def test_limits_count_evaluation_and_each_workers_traces():
    """Two workers, two models: every worker traces once (worker 0 for 1.0 s, worker 1 for 0.5 s), each hop
    trains 1 s warm, evaluation takes 0.5 s a model-epoch."""
    from benchmarks.analysis import limits

    def hop(worker, model, train, traced=False, eval_s=None, eval_traced=False):
        return {"kind": "train", "status": "ok", "worker": worker, "model_id": model, "start": 0, "end": 1,
                "train_s": train, "traced": traced, "eval_traced": eval_traced,
                **({} if eval_s is None else {"eval_s": eval_s})}
    records = [hop(0, "a", 2.0, traced=True), hop(1, "b", 1.5, traced=True),
               hop(0, "b", 1.0, eval_s=0.5), hop(1, "a", 1.0, eval_s=0.5),
               hop(0, "a", 1.0), hop(1, "b", 1.0), {"kind": "eval", "status": "ok", "worker": 1, "model_id": "a",
                                                    "start": 5.0, "end": 5.25, "eval_s": 0.25}]
    lim = limits(records, 2)
    assert lim["sum_train_s"] == pytest.approx(7.5) and lim["sum_eval_s"] == pytest.approx(1.25)
    assert lim["share_ceiling"] == pytest.approx(7.5 / 8.75)
    assert lim["trace_s_per_worker"] == {0: pytest.approx(1.0), 1: pytest.approx(0.5)}
    assert lim["makespan_floor_s"] == pytest.approx(1.0 + (8.75 - 1.5) / 2)
    ff = {"summary": {"training_share": 0.6, "share_ceiling": lim["share_ceiling"], "speedup_own": 1.2,
                      "speedup_own_ceiling": 1.55, "makespan_s": 4.0, "T_own_seq": 4.8,
                      "task_parallel_speedup_own": 1.9, "share_of_task_parallel": 0.63, "speedup": 4.0},
          "metrics": {"sum_train_s": 7.5, "workers": 2, "per_warm_hop": {"n": 4}, "limits": lim}}
    rows = {r[0]: r for r in report.headline_rows({"flights_full": ff}, {})}
    share = next(r for k, r in rows.items() if k.startswith("flights_full training share"))
    assert "at most 0.86 with no idle or overhead: evaluation took 1.2 s beside 7.5 s of training" in share[3]
    own = next(r for k, r in rows.items() if k.startswith("MOP (W = 2)"))
    assert "at most 1.55× with each worker tracing each architecture" in own[3]


def test_airflow_epoch_tasks_time_outside_their_hops_per_epoch_and_in_the_report():
    """Each epoch task's seconds before its first hop and after its last, from the task times and the hop
    records; the Airflow section shows them per epoch, and results without them keep the older table."""
    from benchmarks.airflow_real import _outside_hops

    records = [{"epoch": 1, "start": 10.3, "end": 11.0}, {"epoch": 1, "start": 10.4, "end": 11.8},
               {"epoch": 2, "start": 13.2, "end": 13.9}]
    tasks = {"epoch_1": {"start": 10.0, "end": 12.0}, "epoch_2": {"start": 13.0, "end": 14.0},
             "epoch_3": {"start": None, "end": None}}
    outside = _outside_hops(records, tasks)
    assert outside == {1: {"before_first_hop_s": 0.3, "after_last_hop_s": 0.2},
                       2: {"before_first_hop_s": 0.2, "after_last_hop_s": 0.1}}
    result = {"workload": "w", "epochs": 2, "workers": 2, "configs": 2, "machine": {},
              "summary": {"airflow_epoch_task_s": [2.0, 1.0], "airflow_epoch_task_mean_s": 1.5,
                          "cli_epoch_s": [1.5, 0.7], "cli_epoch_mean_s": 1.1},
              "airflow": {"state": "success", "startup_s": 9.0, "hop_span_s": {1: 1.5, 2: 0.7},
                          "outside_hops_s": outside},
              "cli": {"hop_span_s": {1: 1.4, 2: 0.6}}}
    lines = report._airflow_section(result)
    assert "| task start → first hop s (Airflow) | 0.30 | 0.20 | |" in lines
    assert "| last hop → task end s (Airflow) | 0.20 | 0.10 | |" in lines
    del result["airflow"]["outside_hops_s"]
    assert not any("first hop" in line for line in report._airflow_section(result))
