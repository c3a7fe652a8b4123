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
    evals = [r for r in ok if r["kind"] == "eval"]
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
    sched = [(r["end"] - r["start"]) - (r.get("train_s") or 0) - (r.get("read_s") or 0) - (r.get("write_s") or 0)
             for r in train]
    # "warm" hops: the worker has run this model before (its compiled model is cached, fit is traced);
    # a (worker, model)'s first hop also builds the model (inside load_s, or read_s when there is no checkpoint
    # yet) and traces train_function (inside train_s).
    seen, warm = set(), []
    for r in sorted(ok, key=lambda r: r["start"]):
        key = (r["worker"], r["model_id"])
        if r["kind"] == "train" and key in seen:
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
        "hops_train": len(train), "hops_eval": len(evals), "workers": workers,
        "makespan_s": makespan, "sum_train_s": sum_train, "sum_unit_wall_s": busy,
        "efficiency": sum_train / (workers * makespan) if makespan > 0 else None,
        "busy_fraction": busy / (workers * makespan) if makespan > 0 else None,
        "idle_s": workers * makespan - busy,
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
            "sched_s": _mean([(r["end"] - r["start"]) - (r.get("train_s") or 0) - (r.get("read_s") or 0)
                              - (r.get("write_s") or 0) for r in warm]),
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
    for e in sorted({r["epoch"] for r in ok}):
        s = min(r["start"] for r in ok if r["epoch"] == e) - t0
        ax.axvline(s, color="grey", linestyle=":", linewidth=1)
        ax.text(s, len(workers) - 0.4, f" epoch {e}", fontsize=8, color="grey", va="bottom")
    ax.set_yticks(range(len(workers)), [f"worker {w}" for w in workers])
    ax.set_xlabel("seconds since the first hop started")
    ax.set_ylim(-0.6, len(workers) + 0.1)
    handles = [Patch(facecolor=colour[m], edgecolor="black", label=m) for m in models]
    handles.append(Patch(facecolor="white", edgecolor="black", hatch="///", label="eval unit"))
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
