"""What select keeps of a run's epochs: the hop log and leaderboard files in the run's store, and the MLflow
hop table (one row per unit: enough, with the partition data, to replay any epoch from an MLflow checkpoint).
"""
from __future__ import annotations

from cerebro_ops.mlflow.tracking import checkpoint_artifact
from cerebro_ops.core.seeds import derive_seed
from cerebro_ops.mop.records import RecordLog

LEADERBOARD = "leaderboard.json"


def write_run_files(store, leaderboard: list[dict]) -> list[dict]:
    """hoplog.jsonl (every hop record, oldest first) and leaderboard.json; returns the hop records."""
    hops = RecordLog(store)
    records = hops.read_all()
    hops.write_log(records)
    store.write_json(LEADERBOARD, leaderboard)
    return records


def hop_table(records: list[dict], seed: int, store, child_runs: dict[str, str | None]) -> list[dict]:
    """One row per unit of the run, for the MLflow table hops.json: what ran where and when, the seed of a
    train hop (as EpochPass.payload derives it), the checkpoint it wrote (store URI and sha256) and, for a
    config's last hop of an epoch, that checkpoint's copy in its child run (``mlflow_ckpt``)."""
    last_hop: dict[tuple, int] = {}
    for r in records:
        if r.get("kind", "train") == "train" and r.get("status") == "ok":
            key = (r["epoch"], r["model_id"])
            last_hop[key] = max(last_hop.get(key, -1), r["hop"])
    rows = []
    for r in records:
        kind, epoch, m = r.get("kind", "train"), r["epoch"], r["model_id"]
        train = kind == "train"
        child = child_runs.get(m)
        epoch_end = train and r.get("status") == "ok" and last_hop.get((epoch, m)) == r["hop"]
        rows.append({"unit": f"{m}/e{epoch}/{kind}/p{r['partition']}", "epoch": epoch, "model_id": m, "kind": kind,
                     "hop": r.get("hop"), "partition": r["partition"], "worker": r.get("worker"), "pid": r.get("pid"),
                     "start": r.get("start"), "end": r.get("end"), "train_s": r.get("train_s"),
                     "status": r.get("status"), "n": r.get("n"), "loss": r.get("loss"),
                     "seed": derive_seed(seed, m, epoch, r["partition"]) if train else None,
                     "ckpt": store.url(r["ckpt"]) if r.get("ckpt") else None, "sha256": r.get("sha256"),
                     "mlflow_ckpt": f"runs:/{child}/{checkpoint_artifact(epoch)}" if epoch_end and child else None})
    return rows
