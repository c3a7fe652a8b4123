"""Hop-log analysis (makespan, efficiency, overhead split) and the Gantt chart. Pure Python + matplotlib."""
from __future__ import annotations

import statistics
from collections import defaultdict


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def hop_metrics(records: list[dict], workers: int, epoch_starts: dict[int, float], run_start: float) -> dict:
    ok = [r for r in records if r.get("status", "ok") == "ok"]
    train = [r for r in ok if r["kind"] == "train"]
    evals = [r for r in ok if r["kind"] == "eval"]  # older runs: evaluation as units of its own
    evaluated = [r for r in train if r.get("metrics")]  # a model's last hop, which also evaluated it
    t0 = min(r["start"] for r in ok)
    t1 = max(r["end"] for r in ok)
    makespan = t1 - t0
    sum_train = sum(r.get("train_s") or 0.0 for r in train)
    busy = sum(r["end"] - r["start"] for r in ok)
    # gaps between consecutive units on one worker within an epoch (hop-server round trip + waits)
    gaps = []
    by = defaultdict(list)
    for r in ok:
        by[(r["epoch"], r["worker"])].append(r)
    for rs in by.values():
        rs.sort(key=lambda r: r["start"])
        gaps += [b["start"] - a["end"] for a, b in zip(rs, rs[1:])]
    epochs = sorted({r["epoch"] for r in ok})
    boundary = []
    for e in epochs[1:]:
        prev_end = max(r["end"] for r in ok if r["epoch"] == e - 1)
        nxt = min(r["start"] for r in ok if r["epoch"] == e)
        boundary.append(nxt - prev_end)
    epoch_span = {e: max(r["end"] for r in ok if r["epoch"] == e) - min(r["start"] for r in ok if r["epoch"] == e)
                  for e in epochs}
    sched = [_wall(r) - (r.get("train_s") or 0) - (r.get("read_s") or 0) - (r.get("write_s") or 0)
             - (r.get("eval_s") or 0) for r in train]
    # "warm" hops: no tracing in the hop. Records that say so ("traced") are taken at their word; older ones
    # count a (worker, model)'s first hop as cold (it built the model and traced fit's train function).
    seen, warm = set(), []
    for r in sorted(ok, key=lambda r: r["start"]):
        key = (r["worker"], r["model_id"])
        if r["kind"] == "train" and ((not r["traced"]) if "traced" in r else key in seen):
            warm.append(r)
        seen.add(key)
    wgaps = []
    for rs in by.values():
        for a, b in zip(rs, rs[1:]):
            if b in warm:
                wgaps.append(b["start"] - a["end"])
    first_start = t0
    e1 = epoch_starts.get(1)
    return {
        "hops_train": len(train), "hops_eval": len(evals), "evaluations": len(evaluated) + len(evals),
        "workers": workers,
        "makespan_s": makespan, "sum_train_s": sum_train, "sum_unit_wall_s": busy,
        "efficiency": sum_train / (workers * makespan) if makespan > 0 else None,
        "busy_fraction": busy / (workers * makespan) if makespan > 0 else None,
        "idle_s": workers * makespan - busy,
        "sum_eval_s": _eval_seconds(ok),
        "eval_per_model_epoch_s": _mean([r.get("eval_s") for r in evaluated] + [
            sum(map(_wall, g)) for g in _groups(evals, ("epoch", "model_id")).values()]),
        "traces": traces_per_architecture(train),
        "per_hop": {
            "train_s": _mean([r.get("train_s") for r in train]),
            "wall_s": _mean([r["end"] - r["start"] for r in train]),
            "read_s": _mean([r.get("read_s") for r in train]),
            "write_s": _mean([r.get("write_s") for r in train]),
            "load_s": _mean([r.get("load_s") for r in train]),
            "save_s": _mean([r.get("save_s") for r in train]),
            "ckpt_load_plus_save_s": _mean([(r.get("read_s") or 0) + (r.get("load_s") or 0)
                                            + (r.get("write_s") or 0) + (r.get("save_s") or 0) for r in train]),
            "sched_s": _mean(sched),   # hop wall - train_s - read_s - write_s (load_s+save_s+bookkeeping)
            "gap_s": _mean(gaps),      # between units on a worker within an epoch
            "eval_wall_s": _mean([r["end"] - r["start"] for r in evals]),
            "eval_s": _mean([r.get("eval_s") for r in evaluated]),  # in the hops that evaluated
            # everything that is not training, spread over the training hops (incl. eval units, idle, epoch gaps)
            "all_in_overhead_s": (workers * makespan - sum_train) / len(train) if train else None,
        },
        "per_warm_hop": {
            "n": len(warm),
            "train_s": _mean([r.get("train_s") for r in warm]),
            "wall_s": _mean([r["end"] - r["start"] for r in warm]),
            "read_s": _mean([r.get("read_s") for r in warm]),
            "write_s": _mean([r.get("write_s") for r in warm]),
            "load_s": _mean([r.get("load_s") for r in warm]),
            "save_s": _mean([r.get("save_s") for r in warm]),
            "ckpt_load_plus_save_s": _mean([(r.get("read_s") or 0) + (r.get("load_s") or 0)
                                            + (r.get("write_s") or 0) + (r.get("save_s") or 0) for r in warm]),
            "sched_s": _mean([_wall(r) - (r.get("train_s") or 0) - (r.get("read_s") or 0)
                              - (r.get("write_s") or 0) - (r.get("eval_s") or 0) for r in warm]),
            "gap_s": _mean(wgaps),
        },
        "cold_hop_extra_train_s": ((_mean([r.get("train_s") for r in train if r not in warm]) or 0)
                                   - (_mean([r.get("train_s") for r in warm]) or 0)),
        "epoch_boundary_gap_s": boundary,
        "epoch_span_s": epoch_span,
        "cold_start_from_run_s": first_start - run_start,
        "cold_start_from_epoch1_s": (first_start - e1) if e1 else None,
        "first_hop_wall_s": min((r for r in ok), key=lambda r: r["start"])["end"] - first_start,
    }


def limits(records: list[dict], workers: int) -> dict:
    """What this hop log allows at best, for the targets that cannot be read from the log alone.

    - share_ceiling: the training share (Σ train_s / (W × makespan)) if no worker ever idled or spent a second
      on anything but training and evaluation: Σ train_s / (Σ train_s + Σ eval_s). Evaluation is work a study
      must do (every model, every epoch), yet it is not training.
    - makespan_floor_s: every worker traces each architecture it meets (MOP sends every model to every worker),
      and no other worker can take those seconds over: the longest worker's trace seconds (the extra of its
      traced hops over the same model's untraced ones) plus the rest of the work spread evenly over W."""
    ok = [r for r in records if r.get("status", "ok") == "ok"]
    train = [r for r in ok if r["kind"] == "train"]
    sum_train = sum(r.get("train_s") or 0.0 for r in train)
    sum_eval = _eval_seconds(ok)
    warm_train = defaultdict(list)
    for r in train:
        if not r.get("traced"):
            warm_train[r["model_id"]].append(r.get("train_s") or 0.0)
    warm_eval = [r["eval_s"] for r in ok if r.get("eval_s") is not None and not r.get("eval_traced")]
    trace_s = {w: 0.0 for w in sorted({r["worker"] for r in ok})}
    for r in ok:
        if r["kind"] == "train" and r.get("traced") and warm_train.get(r["model_id"]):
            trace_s[r["worker"]] += max(0.0, r["train_s"] - statistics.median(warm_train[r["model_id"]]))
        if r.get("eval_traced") and r.get("eval_s") is not None and warm_eval:
            trace_s[r["worker"]] += max(0.0, r["eval_s"] - statistics.median(warm_eval))
    rest = sum_train + sum_eval - sum(trace_s.values())
    return {"sum_train_s": sum_train, "sum_eval_s": sum_eval,
            "share_ceiling": sum_train / (sum_train + sum_eval) if sum_train + sum_eval else None,
            "trace_s_per_worker": trace_s,
            "makespan_floor_s": max(trace_s.values(), default=0.0) + rest / workers}


def ceilings(lim: dict, t_own_seq: float | None) -> dict:
    """The summary's bounds from limits(): the best training share, and the best speed-up over the own loop
    run sequentially (`t_own_seq` s; None when that baseline or the floor is missing)."""
    floor = lim.get("makespan_floor_s")
    return {"share_ceiling": lim.get("share_ceiling"),
            "speedup_own_ceiling": t_own_seq / floor if t_own_seq and floor else None}


def _eval_seconds(ok: list[dict]) -> float:
    """Evaluation seconds of a hop log: eval_s wherever a unit evaluated (a train hop's chained or final
    evaluation, an eval unit), and the wall time of older runs' eval units, which did not record it."""
    return (sum(r["eval_s"] for r in ok if r.get("eval_s") is not None)
            + sum(_wall(r) for r in ok if r["kind"] == "eval" and r.get("eval_s") is None))


def _wall(r: dict) -> float:
    return r["end"] - r["start"]


def _groups(records: list[dict], keys: tuple) -> dict:
    out = defaultdict(list)
    for r in records:
        out[tuple(r.get(k) for k in keys)].append(r)
    return out


def traces_per_architecture(train: list[dict]) -> dict:
    """How often each worker traced each architecture's train loop (records with "arch" and "traced").

    A worker is (partition, pid): a Spark task of a later epoch may run in another Python worker process,
    which traces again. `max` is the figure to hold to 1; None for records that do not say."""
    said = [r for r in train if "arch" in r and "traced" in r]
    if not said:
        return {"max": None, "mean": None, "total": None, "architectures": None, "worker_processes": None}
    counts = {k: sum(bool(r["traced"]) for r in g) for k, g in _groups(said, ("worker", "pid", "arch")).items()}
    return {"max": max(counts.values()), "mean": statistics.fmean(counts.values()), "total": sum(counts.values()),
            "architectures": len({r["arch"] for r in said}),
            "worker_processes": len({(r["worker"], r.get("pid")) for r in said})}


def gantt(records: list[dict], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    ok = [r for r in records if r.get("status", "ok") == "ok"]
    t0 = min(r["start"] for r in ok)
    models = sorted({r["model_id"] for r in ok})
    cmap = plt.get_cmap("tab20" if len(models) > 10 else "tab10")
    colour = {m: cmap(i % cmap.N) for i, m in enumerate(models)}
    workers = sorted({r["worker"] for r in ok})
    fig, ax = plt.subplots(figsize=(14, 1.2 + 0.9 * len(workers)))
    for r in ok:
        y = workers.index(r["worker"])
        ax.barh(y, r["end"] - r["start"], left=r["start"] - t0, height=0.7, color=colour[r["model_id"]],
                edgecolor="black", linewidth=0.4, hatch="///" if r["kind"] == "eval" else None)
        if r["kind"] == "train" and r.get("train_s"):  # the pure-training part, as a thin dark line
            ax.plot([r["start"] - t0 + (r.get("read_s") or 0) + (r.get("load_s") or 0)] * 2,
                    [y - 0.35, y + 0.35], color="black", linewidth=0.5)
        if r["kind"] == "train" and r.get("eval_s"):  # the evaluation in a model's last hop, before its write
            ax.barh(y, r["eval_s"], left=r["end"] - t0 - (r.get("write_s") or 0) - r["eval_s"], height=0.7,
                    color="none", edgecolor="black", linewidth=0.4, hatch="///")
    for e in sorted({r["epoch"] for r in ok}):
        s = min(r["start"] for r in ok if r["epoch"] == e) - t0
        ax.axvline(s, color="grey", linestyle=":", linewidth=1)
        ax.text(s, len(workers) - 0.4, f" epoch {e}", fontsize=8, color="grey", va="bottom")
    ax.set_yticks(range(len(workers)), [f"worker {w}" for w in workers])
    ax.set_xlabel("seconds since the first hop started")
    ax.set_ylim(-0.6, len(workers) + 0.1)
    handles = [Patch(facecolor=colour[m], edgecolor="black", label=m) for m in models]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="evaluation"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def accuracy(mop_val: dict[str, float], seq_val: dict[str, list[float]]) -> dict:
    rows = {}
    for m, vals in seq_val.items():
        mean = statistics.fmean(vals)
        spread = max(vals) - min(vals)
        mv = mop_val.get(m)
        d = abs(mv - mean) if mv is not None else None
        rows[m] = {"mop": mv, "seq_mean": mean, "seq_min": min(vals), "seq_max": max(vals), "seq_spread": spread,
                   "abs_diff": d, "within_spread": (d is not None and d <= spread),
                   "within_2x_spread": (d is not None and d <= 2 * spread)}
    best_seq = min(seq_val, key=lambda m: statistics.fmean(seq_val[m]))
    best_mop = min((m for m in mop_val if mop_val[m] is not None), key=lambda m: mop_val[m]) if mop_val else None
    return {"per_config": rows, "best_seq": best_seq, "best_mop": best_mop, "same_best": best_seq == best_mop,
            "n_within_spread": sum(r["within_spread"] for r in rows.values()), "n_configs": len(rows)}


def peak_rss(records: list[dict]) -> dict:
    """Peak resident memory of each worker process (MB) from the hop records' rss_peak_kb (the process's
    high-water mark when it reported the hop; the last record of a process holds its peak). None when the
    records do not say (older runs)."""
    said = [r for r in records if r.get("rss_peak_kb")]
    if not said:
        return {"max_mb": None, "per_process_mb": None}
    per = {}
    for r in said:
        k = f"worker {r['worker']} pid {r.get('pid')}"
        per[k] = max(per.get(k, 0), r["rss_peak_kb"] / 1024)
    return {"max_mb": max(per.values()), "per_process_mb": dict(sorted(per.items()))}


def _overhead(h: dict) -> float:
    """A hop's time that is neither training nor evaluation (wall − train_s − eval_s), plus the gap before it."""
    return (h["sched_s"] or 0.0) + (h["read_s"] or 0.0) + (h["write_s"] or 0.0) + (h["gap_s"] or 0.0)


def hop_summary(metrics: dict) -> dict:
    ph, pw = metrics["per_hop"], metrics["per_warm_hop"]
    return {
        "hop_overhead_all_s": _overhead(ph),
        "hop_overhead_s": _overhead(pw) if pw["n"] else None,
        "ckpt_load_save_all_s": ph["ckpt_load_plus_save_s"],
        "ckpt_load_save_s": pw["ckpt_load_plus_save_s"] if pw["n"] else None,
        "train_s_per_hop": ph["train_s"],
        "eval_per_model_epoch_s": metrics["eval_per_model_epoch_s"],
        "eval_fraction": metrics["sum_eval_s"] / metrics["sum_unit_wall_s"] if metrics["sum_unit_wall_s"] else None,
        "traces_per_arch_worker_max": metrics["traces"]["max"],
        "mop_rss_peak_mb": metrics.get("rss", {}).get("max_mb"),
    }


def _range(vals: list[float]) -> dict:
    return {"min": min(vals), "max": max(vals), "mean": statistics.fmean(vals), "spread": max(vals) - min(vals),
            "n": len(vals)}


def seed_spreads(mop: dict[str, dict[str, float]], seq: dict[str, dict[str, float]]) -> dict:
    """MOP's own final val loss spread over its seeds against the sequential loop's over the same seeds (each
    seed on its own split): per config both ranges and whether they overlap; the best config of each (lowest
    mean), and whether MOP's best is the sequential best or lies inside that config's sequential range."""
    configs = sorted(next(iter(seq.values())))
    rows = {}
    for m in configs:
        a = _range([run[m] for run in mop.values() if run.get(m) is not None])
        b = _range([run[m] for run in seq.values()])
        gap = max(0.0, a["min"] - b["max"], b["min"] - a["max"])  # 0 when the ranges overlap
        rows[m] = {"mop": a, "seq": b, "overlap": gap == 0.0, "gap": gap}
    best_seq = min(configs, key=lambda m: rows[m]["seq"]["mean"])
    best_mop = min(configs, key=lambda m: rows[m]["mop"]["mean"])
    near = rows[best_mop]["seq"]["min"] <= rows[best_seq]["seq"]["max"]
    return {"per_config": rows, "n_overlap": sum(r["overlap"] for r in rows.values()), "n_configs": len(rows),
            "best_seq": best_seq, "best_mop": best_mop, "same_best": best_seq == best_mop,
            "best_within_spread": best_seq == best_mop or near, "mop_seeds": sorted(mop), "seq_seeds": sorted(seq)}
