"""One MOP epoch, driver side: scheduler + hop server + hop records in the store.

`EpochDriver(EpochContext(...), launch).run()` trains every live model one sub-epoch on each partition;
the last hop of each model also evaluates it (the record of that hop carries the validation metrics).
The pieces, each in one place:
- `RecordLog` (records.py): the hop records in the store (one small JSON file per finished unit, written
  before the scheduler moves on; a re-run of the epoch reads them and does not redo those units);
- `EpochPass`: one pass of the workers over the epoch's scheduler (unit payloads, results, failures);
- `judge_failure`: the failure policy (transient → retry, config → the model fails, corrupt checkpoint →
  roll back);
- `WorkerSession`: the hop server and the launcher thread, started and stopped together;
- `EpochDriver.repair`: the redo of a model whose checkpoint was rolled back.
The workers are launched by a callable (a Spark job in production, threads in fast tests), so this module
imports no Spark.
"""
from __future__ import annotations

import functools
import ipaddress
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cerebro_ops.core.errors import CerebroError, ClusterError
from cerebro_ops.core.hop_order import EpochOrder, HopOrder
from cerebro_ops.mop.hop_server import HopServer, HopTimeouts, WorkersMissing
from cerebro_ops.mop.records import RecordHook, RecordLog, load_records, record_name, unit_of  # noqa: F401
from cerebro_ops.core.run_state import ModelStatus
from cerebro_ops.core.scheduler import EVAL, TRAIN, MopScheduler, Unit
from cerebro_ops.core.seeds import derive_seed
from cerebro_ops.core.spec import TrainSpec
from cerebro_ops.store import Store
from cerebro_ops.mop.worker import EpochTask

log = logging.getLogger("cerebro_ops.mop.epoch")

# Environment switch for the crash tests, read only by `FaultHooks.from_env`: with
# CEREBRO_FAULT_KILL_AFTER_HOPS=N the driver SIGKILLs its own process right after the N-th hop record it
# writes (counted over the process, across epochs), i.e. mid-epoch, with no chance to clean up -- exactly
# what a crash or an OOM kill of the driver looks like. Then `cerebro-ops run SPEC --run-id R --resume`
# must finish the run without redoing recorded hops.
FAULT_KILL_AFTER_HOPS = "CEREBRO_FAULT_KILL_AFTER_HOPS"
# And with CEREBRO_FAULT_HOLD_AFTER_PEER=IP:FILE the driver holds its hop server right after the first hop
# record from a worker at address IP until FILE exists (at most HOLD_MAX_S): the hook runs under the server's
# lock, so no worker gets or reports a unit meanwhile, and a test can kill that worker's host while it
# still has units of the epoch left, whatever the timing of the hops.
FAULT_HOLD_AFTER_PEER = "CEREBRO_FAULT_HOLD_AFTER_PEER"
HOLD_MAX_S = 300.0

# How many times a model's corrupt checkpoint is rolled back and its hop redone before the model fails.
MAX_REPAIRS = 2


# ----------------------------------------------------------------------------------------------- faults
class KillAfterRecords:
    """A record hook that kills the process once `n` records have been written through it."""

    def __init__(self, n: int, kill: Callable[[], None] | None = None):
        self.n = n
        self.count = 0
        self.kill = kill or (lambda: os.kill(os.getpid(), signal.SIGKILL))

    def __call__(self, rec: dict) -> None:
        self.count += 1
        if self.count >= self.n:
            log.warning("fault injection: SIGKILL after %d recorded hops", self.count)
            self.kill()


@functools.cache
def _process_kill_hook(n: int) -> KillAfterRecords:
    return KillAfterRecords(n)  # one per process, so the count runs across the epochs of a run


class HoldAfterPeer:
    """A record hook that blocks, once, after the first record from `peer` until the file `release` exists."""

    def __init__(self, peer: str, release: str, max_s: float = HOLD_MAX_S, poll_s: float = 0.05):
        self.peer, self.release, self.max_s, self.poll_s = peer, release, max_s, poll_s
        self.held = False

    def __call__(self, rec: dict) -> None:
        if self.held or rec.get("peer") != self.peer:
            return
        self.held = True
        log.warning("fault injection: hop server held after the first hop from %s until %s exists",
                    self.peer, self.release)
        deadline = time.monotonic() + self.max_s  # bounded: a test that died must not hang the run
        while not os.path.exists(self.release) and time.monotonic() < deadline:
            time.sleep(self.poll_s)


@functools.cache
def _process_hold_hook(switch: str) -> HoldAfterPeer:
    peer, _, release = switch.partition(":")
    if not peer or not release:
        raise ValueError(f"{FAULT_HOLD_AFTER_PEER} must be IP:FILE, not {switch!r}")
    return HoldAfterPeer(peer, release)  # one per process: it holds once per run, not once per epoch


@dataclass(frozen=True)
class FaultHooks:
    """Test seams into the driver: `after_write` hooks see each hop record right after it is stored."""
    after_write: tuple[RecordHook, ...] = ()

    @classmethod
    def from_env(cls) -> FaultHooks:
        """The CEREBRO_FAULT_* switches (see above) as hooks; no hooks when they are unset."""
        hold, n = os.environ.get(FAULT_HOLD_AFTER_PEER), os.environ.get(FAULT_KILL_AFTER_HOPS)
        return cls(((_process_hold_hook(hold),) if hold else ()) + ((_process_kill_hook(int(n)),) if n else ()))


# ----------------------------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class Failure:
    worker: int
    unit: Unit
    reason: str
    config_failed: bool
    ckpt_corrupt: bool


@dataclass(frozen=True)
class Verdict:
    status: str                    # retry | failed | rollback
    reason: str
    bad_epoch: int | None = None   # rollback: the epoch of the invalidated train record


def judge_failure(f: Failure, sched: MopScheduler, roll_back: Callable[[str], int | None]) -> Verdict:
    """What a failed unit means for its model, applied to the scheduler.

    A corrupt input checkpoint is rolled back (`roll_back(model)` invalidates the hop that wrote it and
    returns that hop's epoch) and the model is paused until the repair; if it cannot be rolled back it
    counts as transient. A config failure stops the model. Anything else is transient: the unit runs again,
    until the scheduler's retries are exhausted.
    """
    m = f.unit.model_id
    bad_epoch = roll_back(m) if f.ckpt_corrupt else None
    if bad_epoch is not None:
        sched.fail_model(f.worker, f.unit, m)
        return Verdict("rollback", f.reason, bad_epoch)
    if f.config_failed:
        sched.fail_model(f.worker, f.unit, m)
        return Verdict("failed", f.reason)
    if sched.release(f.worker, f.unit):
        return Verdict("retry", f.reason)
    return Verdict("failed", f"gave up after {sched.max_retries} retries: {f.reason}")


# ------------------------------------------------------------------------------------- context, results
@dataclass(frozen=True)
class EpochContext:
    """Everything one epoch (or a repair pass over part of it) trains from."""
    store: Store                            # the run-scoped store
    epoch: int
    configs: dict[str, dict]                # model id -> hyperparameters
    start_ckpt: dict[str, dict | None]      # live model -> its checkpoint at the start (None before epoch 1)
    builder: str
    seed: int
    workers: int
    data_url: str
    meta: dict
    deterministic: bool = True
    max_hop_retries: int = 2
    hop_order: str = TrainSpec.hop_order    # spec train.hop_order, its default there (see hop_order.py)
    replay_store: Store | None = None       # a replay: the recorded run's store, whose hop orders it reuses
    # "partitioned": each worker holds only its own validation rows and a model's evaluation runs through every
    # partition (its last train hop, then W - 1 eval units); "whole": every worker holds the whole split
    validation: str = "whole"
    memory_mb: int | None = None            # runtime.worker_memory_mb (None: the worker's default)
    local_dir: str = ""                     # runtime.local_dir


@dataclass
class ModelResult:
    model_id: str
    status: ModelStatus = ModelStatus.RUNNING  # RUNNING (still live) | FAILED
    reason: str = ""
    train_loss: float | None = None
    val: dict = field(default_factory=dict)   # metric name (without val_) -> value, weighted by examples
    ckpt: dict | None = None                  # {"ckpt": rel path, "sha256": ...} at the end of the epoch


@dataclass
class EpochResult:
    epoch: int
    models: dict[str, ModelResult]
    records: list[dict]
    wall_s: float


# ------------------------------------------------------------------------------------------------- pass
def epoch_hop_order(ctx: EpochContext, model_set: list[str], records: RecordLog) -> HopOrder:
    """The epoch's hop order: recorded with the epoch (resume, repair, replay), else chosen from the unit
    costs of the previous epoch's hop records."""
    started = bool(records.done(ctx.epoch, model_set))
    replay_of = None
    if ctx.replay_store is not None:
        replay_of = (ctx.replay_store, bool(RecordLog(ctx.replay_store).done(ctx.epoch, model_set)))
    previous = records.read(ctx.epoch - 1) if ctx.epoch > 1 else []
    return EpochOrder(ctx.store, ctx.epoch, model_set).get(ctx.hop_order, previous, started, replay_of)


class EpochPass:
    """One pass of the workers over an epoch's scheduler; the hop server's handler.

    Resumes from the epoch's recorded units, hands out payloads, records results and judges failures.
    Models rolled back during the pass end up in `rollback` (model -> epoch of the invalidated hop).
    """

    # shape: the epoch (ctx, model_set, records), the hooks, and whether a bad checkpoint rolls a model back.
    def __init__(self, ctx: EpochContext, model_set: list[str], records: RecordLog,
                 on_record: RecordHook | None, can_roll_back: bool,
                 on_model_done: Callable[[ModelResult], None] | None = None):
        self.ctx, self.log, self.on_record, self.can_roll_back = ctx, records, on_record, can_roll_back
        self.on_model_done = on_model_done
        live = sorted(ctx.start_ckpt)
        previous = records.done(ctx.epoch, live)
        self.sched = MopScheduler(model_set, ctx.workers, ctx.epoch, ctx.seed, done=map(unit_of, previous),
                                  max_retries=ctx.max_hop_retries, order=epoch_hop_order(ctx, model_set, records))
        if ctx.validation == "partitioned":
            self.sched.chain_evaluations(map(unit_of, previous))
        for other in set(model_set) - set(live):
            self.sched.drop_model(other)
        self.results = {m: ModelResult(m, ckpt=ctx.start_ckpt[m]) for m in live}
        self.pointer = {m: ctx.start_ckpt[m] for m in live}  # each model's latest checkpoint
        self.val_state: dict[str, dict] = {}  # each model's validation sums and counts so far (eval chain)
        self.config_of: dict[str, list] = {}  # model -> [architecture, learning rate], as a worker reported
        for r in sorted(previous, key=lambda r: r["hop"]):
            if r["kind"] == TRAIN:
                self.pointer[r["model_id"]] = {"ckpt": r["ckpt"], "sha256": r["sha256"]}
            if "val_state" in r:
                self.val_state[r["model_id"]] = r["val_state"]
            elif r["kind"] == TRAIN and r.get("metrics"):  # evaluated on the whole split before this version
                self.sched.skip_evals(r["model_id"])
        self.records = list(previous)
        self.rollback: dict[str, int] = {}
        if previous:
            log.info("epoch %d: resuming, %d units already done", ctx.epoch, len(previous))

    def payload(self, u: Unit) -> dict:
        ctx, ptr = self.ctx, self.pointer[u.model_id]
        msg = {"builder": ctx.builder, "params": ctx.configs[u.model_id],
               "ckpt_in": ptr["ckpt"] if ptr else None, "sha_in": ptr["sha256"] if ptr else None,
               "init_seed": derive_seed(ctx.seed, u.model_id, "init")}
        if u.model_id in self.config_of:
            msg["config_of"] = self.config_of[u.model_id]
        if u.kind == TRAIN:
            msg["seed"] = derive_seed(ctx.seed, u.model_id, ctx.epoch, u.partition)
            msg["ckpt_out"] = f"ckpt/{u.model_id}/e{ctx.epoch}-h{u.hop}.npz"
            msg["evaluate"] = u.hop == ctx.workers - 1  # the last hop also evaluates the trained model
        if ctx.validation == "partitioned" and (u.kind != TRAIN or msg["evaluate"]):
            # the chain: sums and counts so far in, this partition's added, the last unit's are the metrics
            msg.update(evaluate=True, val_chain=True, val_state=self.val_state.get(u.model_id) if u.kind != TRAIN
                       else None, val_final=u.hop == 2 * ctx.workers - 2)
        return msg

    def on_done(self, worker: int, u: Unit, rec: dict) -> None:
        rec = {**rec, "epoch": self.ctx.epoch, "model_id": u.model_id, "partition": u.partition, "kind": u.kind,
               "hop": u.hop, "status": "ok"}
        self.log.write(rec)
        if u.kind == TRAIN:
            self.pointer[u.model_id] = {"ckpt": rec["ckpt"], "sha256": rec["sha256"]}
        if rec.get("config_of"):
            self.config_of[u.model_id] = rec["config_of"]
        if "val_state" in rec:
            self.val_state[u.model_id] = rec["val_state"]
        self.records.append(rec)
        _log_hop(rec)
        if self.on_record:
            self.on_record(rec)
        if self.on_model_done is not None and u.hop == self.ctx.workers - 1 + self.sched.evals:
            self._model_done(u.model_id)  # its last unit of the epoch: its result is final

    def _model_done(self, model_id: str) -> None:
        """Hand a model's final epoch result out while the others still train (on the hop server's thread)."""
        try:
            self.on_model_done(self._result_of(replace(self.results[model_id])))
        except Exception:  # noqa: BLE001 - a consumer's error never stops the epoch; summarise() still has it
            log.warning("epoch %d: the early result of %s was not handed out", self.ctx.epoch, model_id,
                        exc_info=True)

    def on_failed(self, worker: int, u: Unit, reason: str, config_failed: bool, ckpt_corrupt: bool = False) -> None:
        rec = {"epoch": self.ctx.epoch, "model_id": u.model_id, "partition": u.partition, "kind": u.kind,
               "hop": u.hop, "worker": worker, "start": time.time(), "end": time.time(), "reason": reason[:2000]}
        verdict = judge_failure(Failure(worker, u, reason, config_failed, ckpt_corrupt), self.sched,
                                self._roll_back)
        rec["status"] = verdict.status
        if verdict.status == "rollback":
            self.rollback[u.model_id] = verdict.bad_epoch
            self.records[:] = [r for r in self.records
                               if not (r["model_id"] == u.model_id and r.get("epoch") == verdict.bad_epoch)]
        elif verdict.status == "failed":
            self.results[u.model_id].status = ModelStatus.FAILED
            self.results[u.model_id].reason = verdict.reason.splitlines()[0][:500]
        self.records.append(rec)
        log.warning("hop epoch=%d model=%s partition=%d %s: %s", self.ctx.epoch, u.model_id, u.partition,
                    verdict.status, verdict.reason.splitlines()[0][:200])
        if self.on_record:
            self.on_record(rec)

    def _roll_back(self, model_id: str) -> int | None:
        if not self.can_roll_back:
            return None
        return self.log.invalidate(self.ctx.epoch, model_id, self.pointer[model_id])

    def summarise(self) -> None:
        """Per model: train loss averaged by example count, and the validation metrics of its last hop."""
        failed = set(self.sched.failed_models())  # rolled-back models too, until their repair replaces them
        for m, res in self.results.items():
            if m in failed:
                res.status = ModelStatus.FAILED
                res.reason = res.reason or "failed"
                continue
            self._result_of(res)

    def _result_of(self, res: ModelResult) -> ModelResult:
        """`res` filled from the model's finished records: train loss, validation metrics, checkpoint."""
        m = res.model_id
        ok = [r for r in self.records if r["model_id"] == m and r.get("status") == "ok"]
        train = [r for r in ok if r["kind"] == TRAIN and r["n"]]  # an empty partition reports no loss
        n = sum(r["n"] for r in train)
        res.train_loss = sum(r["loss"] * r["n"] for r in train) / n if n else None
        res.val = _val_metrics(ok)
        res.ckpt = self.pointer[m]
        return res


def _val_metrics(ok: list[dict]) -> dict:
    """Validation metrics (Keras names, without val_) from a model's finished records of one epoch: those of
    its last train hop, which evaluated it; an older run's eval records (one per validation shard) averaged
    by example count. With an evaluation chain, the metrics of its last unit (over every partition)."""
    final = [r for r in ok if "val_state" in r and r.get("metrics")]
    if final:
        last = max(final, key=lambda r: r["hop"])
        return {k: v for k, v in last["metrics"].items() if k != "n"} if last["metrics"].get("n") else {}
    ok = [r for r in ok if "val_state" not in r]
    evaluated = [r for r in ok if r["kind"] == TRAIN and r.get("metrics")]
    if evaluated:
        last = max(evaluated, key=lambda r: r["hop"])
        return {k: v for k, v in last["metrics"].items() if k != "n"} if last["metrics"].get("n") else {}
    evals = [r for r in ok if r["kind"] == EVAL and r["n"]]
    n_val = sum(r["n"] for r in evals)
    keys = sorted({k for r in evals for k in r["metrics"] if k != "n"})
    return {k: sum(r["metrics"][k] * r["n"] for r in evals) / n_val for k in keys} if n_val else {}


def _log_hop(rec: dict) -> None:
    val = " ".join(f"val_{k}={v:.4f}" for k, v in sorted(rec.get("metrics", {}).items()) if k != "n")
    if rec.get("kind", TRAIN) == EVAL:  # a link of the model's validation chain: no training, no loss
        log.info("eval epoch=%d model=%s partition=%d worker=%s %.2fs (eval %.2fs)%s", rec["epoch"],
                 rec["model_id"], rec["partition"], rec.get("worker"), rec["end"] - rec["start"],
                 rec.get("eval_s", 0.0), f" {val}" if val else "")
        return
    log.info("hop epoch=%d model=%s partition=%d worker=%s %.2fs (train %.2fs) loss=%.4f%s", rec["epoch"],
             rec["model_id"], rec["partition"], rec.get("worker"), rec["end"] - rec["start"],
             rec.get("train_s", 0.0), rec.get("loss") if rec.get("loss") is not None else float("nan"),
             f" {val}" if val else "")


# --------------------------------------------------------------------------------------- server, workers
class WorkerSession:
    """The hop server and the workers' launcher of a pass: started together, stopped together -- or, with
    `keep_open` (a CLI run: one process, one Spark session), kept across passes: the workers that finish an
    epoch wait on the open server for the next epoch's units instead of ending their Spark job, so an epoch
    boundary costs no job launch, no reconnect and no idle wait for a server shutdown. `close()` ends it.

    Where the hop server listens -- exactly the address the workers are told, never 0.0.0.0 -- is the first of:
    1. `host` given to EpochDriver (tests);
    2. the environment variable CEREBRO_DRIVER_HOST: this host's address as the Spark workers reach it;
    3. what the launcher says (`launch.advertised_host()`): 127.0.0.1 for a local master, spark.driver.host
       for a classic cluster master; nothing for a remote Spark Connect server (set CEREBRO_DRIVER_HOST);
    4. 127.0.0.1.
    A host name is resolved once, here; the workers get the IP address the server is bound to.
    Each launch makes a new random secret that only its workers get (`EpochTask.secret`).
    """

    def __init__(self, launch: Callable[[EpochTask], None], host: str | None = None,
                 timeouts: HopTimeouts = HopTimeouts(), keep_open: bool = False):
        self.launch = launch
        self.host = host
        self.timeouts = timeouts
        self.keep_open = keep_open
        self._open: _OpenWorkers | None = None
        self.launches = 0  # how many times the workers were launched (one per pass unless kept open)

    def advertised_host(self) -> tuple[str, str]:
        """(host, where it came from), by the rule above."""
        if self.host:
            return self.host, "the driver's host argument"
        if os.environ.get(DRIVER_HOST_ENV):
            return os.environ[DRIVER_HOST_ENV], DRIVER_HOST_ENV
        suggest = getattr(self.launch, "advertised_host", None)
        suggested = suggest() if suggest else None
        return (suggested, "the Spark configuration") if suggested else ("127.0.0.1", "the default")

    def serve(self, hop_pass: EpochPass) -> None:
        """Serve the pass's units (launching the workers, or handing the pass to the open ones) until its
        scheduler is finished; raise if the server failed, a worker did not connect in time, or the workers
        stopped before the end."""
        ctx, sched = hop_pass.ctx, hop_pass.sched
        opened = self._open
        if opened is not None and (opened.returned.is_set() or opened.key != _task_key(ctx)):
            self.close()  # the workers' job ended meanwhile, or another run's data: launch anew
            opened = None
        if opened is None:
            opened = self._open = self._start(hop_pass)
        else:
            opened.server.install(sched, hop_pass)
        try:
            opened.server.wait(until=opened.returned.is_set)
        except WorkersMissing as exc:
            opened.server.stop()  # the connected workers get "done" and end their tasks
            cancel = getattr(self.launch, "cancel", None)
            if cancel:
                cancel()  # the tasks still waiting for a slot
            opened.thread.join(timeout=30)
            self._open = None
            opened.exit()
            raise self._missing(ctx, exc, f"{opened.server.host}:{opened.server.port}", opened.source) from None
        if self.keep_open and sched.finished() and opened.server.error is None:
            return  # the workers wait for the next pass
        errors = self.close()
        if opened.server.error is not None:
            raise opened.server.error
        if not sched.finished():
            if errors and isinstance(errors[0], CerebroError):
                raise errors[0]
            raise RuntimeError(f"epoch {ctx.epoch}: the workers stopped before the epoch finished"
                               + (f": {errors[0]}" if errors else ""))

    def close(self) -> list[BaseException]:
        """Tell the workers they are done, wait for their job to end, stop the server; the launch's errors."""
        opened, self._open = self._open, None
        if opened is None:
            return []
        opened.server.stop()
        opened.thread.join()
        opened.exit()
        return opened.errors

    def _start(self, hop_pass: EpochPass) -> _OpenWorkers:
        ctx = hop_pass.ctx
        host, source = self.advertised_host()
        secret = secrets.token_bytes(32)
        server = _bound_server(hop_pass.sched, hop_pass, host, source, secret, self.timeouts)
        server.keep_workers = self.keep_open
        server.__enter__()
        task = EpochTask(server.host, server.port, ctx.store.uri, ctx.data_url, ctx.meta, ctx.deterministic,
                         secret=secret, heartbeat_s=self.timeouts.heartbeat_s, memory_mb=ctx.memory_mb,
                         local_dir=ctx.local_dir)
        opened = _OpenWorkers(server, source, _task_key(ctx))
        # Set before the wake-up: the thread is still alive while it wakes the server, so a wait that
        # asked is_alive() could go back to sleep until the connect timeout.

        def launch():
            try:
                self.launch(task)
            except BaseException as exc:  # surfaced after the server stops waiting
                opened.errors.append(exc)
            finally:
                opened.returned.set()
                server.wake()

        opened.thread = threading.Thread(target=launch, name=f"epoch-{ctx.epoch}-launcher", daemon=True)
        opened.thread.start()
        self.launches += 1
        return opened

    def _missing(self, ctx: EpochContext, exc: WorkersMissing, address: str, source: str) -> ClusterError:
        slots_of = getattr(self.launch, "task_slots", None)
        slots = slots_of() if slots_of else None
        room = (f"the Spark application has {slots} task slot(s)" if slots is not None
                else "the Spark application may have fewer free task slots than workers")
        if exc.never:
            problem = (f"epoch {ctx.epoch}: only {exc.workers - len(exc.missing)} of {exc.workers} workers "
                       f"connected within {exc.waited_s:.0f} s (missing: {exc.missing}); {room}; the workers "
                       f"were told to connect to {address} (from {source})")
            fix = (f"give the Spark application at least {exc.workers} free task slots (cores) or lower "
                   f"train.workers; if the workers run on other hosts, set {DRIVER_HOST_ENV} to this host's "
                   "address they can reach; raise runtime.connect_timeout_s if executors start slowly")
        else:
            problem = (f"epoch {ctx.epoch}: worker(s) {exc.missing} lost their connection and did not come "
                       f"back within {exc.waited_s:.0f} s; {room}")
            fix = ("check the Spark executors' logs (executor lost, out of memory?) and that the application "
                   "keeps enough task slots; raise runtime.connect_timeout_s if task retries start slowly")
        return ClusterError("train.workers", problem, fix)


# Where the workers reach this driver's hop server, if not where Spark says (see WorkerSession).
DRIVER_HOST_ENV = "CEREBRO_DRIVER_HOST"


@dataclass
class _OpenWorkers:
    """A running launch of the workers: its hop server, launcher thread and what the launch raised."""
    server: HopServer
    source: str                      # where the server's host came from (for the error messages)
    key: tuple                       # _task_key of the passes these workers can serve
    thread: threading.Thread | None = None
    returned: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)

    def exit(self) -> None:
        self.server.__exit__(None, None, None)


def _task_key(ctx: EpochContext) -> tuple:
    """What the workers' EpochTask is made of: passes that agree on it can share one launch."""
    return (ctx.store.uri, ctx.data_url, ctx.deterministic, ctx.memory_mb, ctx.local_dir,
            json.dumps(ctx.meta, sort_keys=True, default=str))


def _bound_server(sched: MopScheduler, handler: EpochPass, host: str, source: str, secret: bytes,
                  timeouts: HopTimeouts) -> HopServer:
    """A hop server bound to `host`'s IPv4 address (which is then what the workers are told)."""
    if _is_wildcard(host):
        raise ClusterError(DRIVER_HOST_ENV, f"the hop server's host {host!r} (from {source}) is a wildcard address: "
                           "the server would listen on every interface, and workers cannot connect to it",
                           "set it to the IPv4 address of this host that the Spark workers reach")
    try:
        ip = socket.getaddrinfo(host, None, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        if _is_wildcard(ip):  # e.g. a name that resolves to 0.0.0.0
            raise OSError(f"it resolves to the wildcard address {ip}")
    except OSError as exc:
        raise ClusterError(DRIVER_HOST_ENV, f"the hop server's host {host!r} (from {source}) does not resolve: "
                           f"{exc}", "set it to an IPv4 address of this host that the Spark workers can reach") from None
    try:
        return HopServer(sched, handler, host=ip, secret=secret, timeouts=timeouts)
    except OSError as exc:
        raise ClusterError(DRIVER_HOST_ENV, f"the hop server cannot listen on {ip} ({host!r}, from {source}): "
                           f"{exc}", "set it to an address of this host that the Spark workers can reach") from None


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return host.strip() in ("", "*")


# ----------------------------------------------------------------------------------------------- driver
class EpochDriver:
    """Runs one epoch: a pass over every live model, then the repair of the models it rolled back.

    A checkpoint that fails its checksum when a worker loads it is not fatal: the train record that wrote
    it is invalidated (deleted), the model is paused for the
    rest of the pass, and once the workers are done the invalidated hop is redone from the previous good
    checkpoint -- in the previous epoch if the bad file was this epoch's starting checkpoint -- before the
    model finishes this epoch (at most MAX_REPAIRS times, then the model fails).
    """

    # shape: launch/hooks/on_record/host/timeouts are what a session is made of; `session` instead reuses one
    # kept open across the epochs of a CLI run (then launch, host and timeouts are its own).
    def __init__(self, ctx: EpochContext, launch: Callable[[EpochTask], None], *, hooks: FaultHooks = FaultHooks(),
                 on_record: RecordHook | None = None, host: str | None = None, timeouts: HopTimeouts = HopTimeouts(),
                 session: WorkerSession | None = None, on_model_done: Callable[[ModelResult], None] | None = None):
        self.ctx = ctx
        self.records = RecordLog(ctx.store, hooks.after_write)
        self.session = session or WorkerSession(launch, host, timeouts)
        self.on_record = on_record
        self.on_model_done = on_model_done  # each model's result as soon as it is final (not in a repair pass)

    def run(self) -> EpochResult:
        t_start = time.time()
        models, records = self.run_pass(self.ctx, MAX_REPAIRS, repair=False)
        return EpochResult(self.ctx.epoch, models, records, time.time() - t_start)

    def run_pass(self, ctx: EpochContext, repairs: int, repair: bool) -> tuple[dict[str, ModelResult], list[dict]]:
        """A pass over ctx's models, then the repair (with one repair less) of each model it rolled back."""
        model_set = self.records.model_set(ctx.epoch, sorted(ctx.start_ckpt), repair)
        hop_pass = EpochPass(ctx, model_set, self.records, self.on_record, can_roll_back=repairs > 0,
                             on_model_done=None if repair else self.on_model_done)
        if not hop_pass.sched.finished():
            self.session.serve(hop_pass)
        hop_pass.summarise()
        results, records = hop_pass.results, hop_pass.records
        for m, bad_epoch in sorted(hop_pass.rollback.items()):
            redo_models, redo_records = self.repair(ctx, m, bad_epoch, repairs - 1)
            results[m] = redo_models[m]
            records = [r for r in records if r["model_id"] != m or r["status"] == "rollback"] + redo_records
        return results, records

    def repair(self, ctx: EpochContext, model_id: str, bad_epoch: int,
               repairs: int) -> tuple[dict[str, ModelResult], list[dict]]:
        """Finish a rolled-back model: redo the invalidated hop's epoch first if it was the previous one
        (this epoch's starting checkpoint was bad), then this epoch from the rebuilt checkpoint."""
        start = ctx.start_ckpt[model_id]
        if bad_epoch < ctx.epoch:
            before = replace(ctx, epoch=bad_epoch,
                             start_ckpt={model_id: self.records.last_ckpt(bad_epoch - 1, model_id)})
            start = self.run_pass(before, repairs, repair=True)[0][model_id].ckpt
        log.warning("epoch %d: %s rolled back to its previous good checkpoint; finishing it", ctx.epoch, model_id)
        return self.run_pass(replace(ctx, start_ckpt={model_id: start}), repairs, repair=True)


# --------------------------------------------------------------------------------------------- launchers
def run_in_threads(work: Callable[[EpochTask, int], object], task: EpochTask, workers: int) -> None:
    """Run work(task, w) for w in 0..W-1 as threads of this process and wait for all of them."""
    threads = [threading.Thread(target=work, args=(task, w)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def thread_launcher(workers: int) -> Callable[[EpochTask], None]:
    """Run the W workers as threads of this process (tests, and Spark-less debugging)."""
    from cerebro_ops.mop.worker import run_worker

    def launch(task: EpochTask) -> None:
        run_in_threads(run_worker, task, workers)
    return launch
