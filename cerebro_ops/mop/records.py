"""The hop records of a run in its store: written, read, invalidated here and nowhere else.

One small JSON file per finished unit (``hops/e<epoch>/<model>-<kind>-p<w>.json``), written before the
scheduler moves on, and the run's hop log (``hoplog.jsonl``), all of them in one file, written at select.
Imports no Spark, TensorFlow or pandas: the UI pages read records through it too.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable

from cerebro_ops.core.scheduler import EVAL, TRAIN, Unit
from cerebro_ops.store import Store

log = logging.getLogger("cerebro_ops.mop.epoch")

RecordHook = Callable[[dict], None]
HOPS = "hops"
HOPLOG = "hoplog.jsonl"


def record_name(epoch: int, u: Unit) -> str:
    return f"{HOPS}/e{epoch}/{u.model_id}-{u.kind}-p{u.partition}.json"


def unit_of(rec: dict) -> Unit:
    return Unit(rec["model_id"], rec["partition"], rec["kind"], rec["hop"])


def load_records(store: Store, epoch: int) -> list[dict]:
    return RecordLog(store).read(epoch)


def by_start(records: Iterable[dict]) -> list[dict]:
    """Oldest first; ties by epoch, then model."""
    return sorted(records, key=lambda r: (r["start"], r.get("epoch", 0), str(r.get("model_id"))))


class RecordLog:
    """The hop records of a run in its store.

    `after_write` hooks run right after each record is in the store and before the driver acts on it.
    """

    def __init__(self, store: Store, after_write: Iterable[RecordHook] = ()):
        self.store = store
        self.after_write = tuple(after_write)

    # ------------------------------------------------------------------ one epoch (the engine)
    def write(self, rec: dict) -> None:
        self.store.write_json(record_name(rec["epoch"], unit_of(rec)), rec)
        for hook in self.after_write:
            hook(rec)

    def read(self, epoch: int) -> list[dict]:
        folder = f"{HOPS}/e{epoch}"
        return [self.store.read_json(f"{folder}/{n}") for n in self.store.listdir(folder) if n.endswith(".json")]

    def done(self, epoch: int, models: Iterable[str]) -> list[dict]:
        """The units of these models that finished in this epoch (what a re-run must not redo)."""
        wanted = set(models)
        return [r for r in self.read(epoch) if r.get("status") == "ok" and r["model_id"] in wanted]

    def model_set(self, epoch: int, live: list[str], repair: bool) -> list[str]:
        """The epoch's whole model set, on which the visit orders depend: recorded by the first pass,
        read back by a repair pass over one model so that it uses the same orders."""
        name = f"{HOPS}/models-e{epoch}.json"
        if repair:
            return self.store.read_json(name, default=[]) or live
        self.store.write_json(name, live)
        return live

    def invalidate(self, epoch: int, model_id: str, ptr: dict | None) -> int | None:
        """Delete the train record that wrote the checkpoint `ptr` (and an older run's eval records of the
        model in that epoch, made from it), so the hop is redone. Returns that record's epoch, or None."""
        if not ptr:
            return None
        for e in (epoch, epoch - 1):
            recs = [r for r in self.read(e) if r["model_id"] == model_id] if e >= 1 else []
            bad = [r for r in recs if r["kind"] == TRAIN and r.get("ckpt") == ptr["ckpt"]]
            if bad:
                for r in [bad[0]] + [r for r in recs if r["kind"] == EVAL]:
                    self.store.delete(record_name(e, unit_of(r)))
                log.warning("checkpoint %s is corrupt: invalidated hop %d of epoch %d of %s", ptr["ckpt"],
                            bad[0]["hop"], e, model_id)
                return e
        return None

    def last_ckpt(self, epoch: int, model_id: str) -> dict | None:
        """The checkpoint a model ended `epoch` with (None before epoch 1)."""
        train = [r for r in self.done(epoch, [model_id]) if r["kind"] == TRAIN] if epoch >= 1 else []
        if not train:
            return None
        last = max(train, key=lambda r: r["hop"])
        return {"ckpt": last["ckpt"], "sha256": last["sha256"]}

    # ------------------------------------------------------------------ the whole run (select, the UI)
    def _epoch_folders(self) -> list[str]:
        return [e for e in self.store.listdir(HOPS) if e.startswith("e") and e[1:].isdigit()]

    def read_all(self) -> list[dict]:
        """Every record of every epoch so far, oldest first."""
        names = [f"{HOPS}/{e}/{n}" for e in self._epoch_folders()
                 for n in self.store.listdir(f"{HOPS}/{e}") if n.endswith(".json")]
        # one batched read: thousands of small records (no exists() per file; object stores fetch in parallel)
        return by_start(json.loads(b) for b in self.store.read_many(names).values()) if names else []

    def write_log(self, records: list[dict]) -> None:
        """The run's hop log, one line per record: what select keeps of the epochs."""
        self.store.write_bytes(HOPLOG, "".join(json_line(r) for r in records).encode())

    def finished(self) -> list[dict]:
        """The run's finished units, oldest first: the hop log after select, the epochs' records before."""
        if self.store.exists(HOPLOG):
            recs = [json.loads(line) for line in self.store.read_bytes(HOPLOG).decode().splitlines() if line.strip()]
        else:
            recs = self.read_all()
        return by_start(r for r in recs if r.get("status", "ok") == "ok" and "start" in r and "end" in r)

    def digest(self, h: "hashlib._Hash") -> None:
        """Feed `h` what changes whenever a record is added: the record count of each epoch."""
        for name in self._epoch_folders():
            h.update(f"{name}:{len(self.store.listdir(f'{HOPS}/{name}'))};".encode())


def json_line(r: dict) -> str:
    return json.dumps(r, sort_keys=True, default=str) + "\n"
