"""Fake MOP workers for driver tests: no Spark, no TensorFlow. A 'model' is the list of partitions it
trained on; faults can be injected per unit."""
from __future__ import annotations

import json

from cerebro_ops.mop.epoch import run_in_threads
from cerebro_ops.core.errors import StoreError
from cerebro_ops.mop.hop_server import HopClient, HopServer
from cerebro_ops.store import Store


def fake_launcher(workers, fail=None, die_once=None, corrupt_after_write=None, calls=None, *,
                  fails=None, eval_loss=None, seen=None, silent_once=None):
    """fail: a model whose every hop reports a config failure (NaN loss); fails: the same for every unit whose
    message this predicate accepts; eval_loss(params, trained partitions): the validation loss a model's last
    hop reports (default: the number of partitions trained on); seen: gets (builder, model_id, kind,
    partition) of every unit handed out;
    die_once: (model, partition) whose unit loses its connection once, then the task is retried;
    silent_once: (model, partition) whose worker freezes once mid-unit (no heartbeat, no reply, connection
    open) until the driver gives up on it and closes the connection; then the task is retried;
    corrupt_after_write: a checkpoint path suffix garbled (once) right after it is written;
    calls: a list that gets one item per launch (one per pass of the driver: the epoch, then each repair)."""
    died, garbled, froze = set(), set(), set()

    def work(task, w):
        store = Store(task.store_uri)
        client = HopClient(task.host, task.port, w, secret=task.secret, heartbeat_s=task.heartbeat_s)
        try:
            while True:
                msg = client.next()
                if msg.get("done"):
                    return
                u = msg["unit"]
                if seen is not None:
                    seen.append((msg["builder"], u["model_id"], u["kind"], u["partition"]))
                if (fail and u["model_id"] == fail) or (fails and fails(msg)):
                    client.failed(u, "loss became nan", config_failed=True)
                    continue
                if die_once and (u["model_id"], u["partition"]) == die_once and die_once not in died:
                    died.add(die_once)
                    client.close()  # the task dies mid-hop: its connection drops
                    return work(task, w)  # ... and Spark retries the task
                if silent_once and (u["model_id"], u["partition"]) == silent_once and silent_once not in froze:
                    froze.add(silent_once)
                    client._stop.set()  # frozen: the heartbeat stops too
                    while client.sock.recv(1):  # until the driver declares it lost and hangs up
                        pass
                    client.close()
                    return work(task, w)  # the task fails on the closed connection; Spark retries it
                try:
                    state = json.loads(store.read_blob(msg["ckpt_in"], msg["sha_in"])) if msg["ckpt_in"] else []
                except StoreError as exc:
                    client.failed(u, str(exc), config_failed=False, ckpt_corrupt=True)
                    continue
                if u["kind"] == "eval":  # a link of the evaluation chain: the final one reports the metrics
                    rec = {"n": 10, "start": 0, "end": 0, "worker": w, "val_state": {"vars": [], "n": 0}}
                    if msg.get("val_final"):
                        rec["metrics"] = {"loss": eval_loss(msg["params"], state) if eval_loss else
                                          float(len(state)), "n": 10}
                    client.result(u, rec)
                    continue
                state = state + [u["partition"]]
                sha = store.write_blob(msg["ckpt_out"], json.dumps(state).encode())
                # garble before reporting: once reported, another worker may load the file at once
                if corrupt_after_write and msg["ckpt_out"].endswith(corrupt_after_write) \
                        and msg["ckpt_out"] not in garbled:
                    garbled.add(msg["ckpt_out"])
                    store.write_bytes(msg["ckpt_out"], b"\x00half-written")
                rec = {"loss": 1.0, "n": 10, "ckpt": msg["ckpt_out"], "sha256": sha, "start": 0, "end": 0, "worker": w}
                if msg.get("val_chain"):  # the first link of the evaluation chain
                    rec["val_state"] = {"vars": [], "n": 0}
                if msg.get("evaluate") and (msg.get("val_final") or not msg.get("val_chain")):
                    # the model's last hop: evaluated on the validation split
                    loss = eval_loss(msg["params"], state) if eval_loss else float(len(state))
                    rec.update(metrics={"loss": loss, "n": 10}, eval_s=0.0)
                client.result(u, rec)
        except ConnectionError:
            return  # the driver went away (an injected crash): the task ends, as a Spark task would
        finally:
            client.close()

    def launch(task):
        if calls is not None:
            calls.append(1)
        run_in_threads(work, task, workers)
    return launch


class ServerCapture:
    """Stands in for HopServer (monkeypatched into cerebro_ops.mop.epoch): builds the real one and keeps it, so a
    test can read what the server saw (peers, refusals) after the epoch."""

    def __init__(self):
        self.servers = []

    def __call__(self, *args, **kw):
        srv = HopServer(*args, **kw)
        self.servers.append(srv)
        return srv
