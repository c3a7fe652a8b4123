"""`cerebro-ops`: the same core as the Airflow DAG, without Airflow."""
from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
import time
from pathlib import Path

from cerebro_ops.core.errors import CerebroError


class Progress:
    """Units done / total, current epoch, best so far: a tqdm bar when the stream is a terminal, otherwise
    plain lines (no carriage returns, so logs and CI output stay readable), one per tenth of the run."""

    def __init__(self, total_per_epoch: int, epochs: int, metric: str, direction: str, stream=None):
        self.total = total_per_epoch * epochs
        self.done = 0
        self.epoch = 0
        self.metric = metric
        self.best = None
        self.direction = direction
        self.stream = stream if stream is not None else sys.stderr
        self.t0 = time.time()
        self._tenths = 0
        self._bar = self._redirect = None
        if _is_terminal(self.stream):
            from tqdm import tqdm
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._bar = tqdm(total=self.total, file=self.stream, unit="unit", dynamic_ncols=True)
            self._redirect = logging_redirect_tqdm()  # log lines (the hop lines) print above the bar
            self._redirect.__enter__()

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self._bar is not None:
            self._bar.set_description(f"epoch {epoch}")

    def record(self, rec: dict) -> None:
        ok = rec.get("status") == "ok"
        if ok:
            self.done += 1
        if ok and rec.get("metrics"):  # a model's last hop of the epoch (or an older run's eval unit)
            v = rec["metrics"].get(self.metric[4:])
            if v is not None and (self.best is None or (v < self.best if self.direction == "min" else v > self.best)):
                self.best = v
        best = f"{self.metric}~{self.best:.4f}" if self.best is not None else f"{self.metric}~-"
        if self._bar is not None:
            if ok:
                self._bar.update(1)
            self._bar.set_postfix_str(f"best {best}", refresh=True)
            return
        tenths = int(10 * self.done / self.total) if self.total else 10
        if tenths > self._tenths:
            self._tenths = tenths
            self.stream.write(f"progress: {self.done}/{self.total} units ({100 * self.done // max(self.total, 1)}%)"
                              f"  epoch {self.epoch}  best {best}  {time.time() - self.t0:.0f}s\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._redirect.__exit__(None, None, None)
            self._bar = None


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _overrides(args) -> dict:
    from cerebro_ops.core.spec import OVERRIDABLE
    return {k: getattr(args, k) for k in OVERRIDABLE if getattr(args, k) is not None}


def cmd_validate(args) -> int:
    from cerebro_ops import study
    spec = study.validate(args.spec, _overrides(args), check_model=not args.no_model_check)
    print(f"OK: study {spec.name!r} (DAG {spec.dag_id}), {spec.search.method} search, "
          f"{spec.train.epochs} epochs, {spec.train.workers} workers, metric {spec.train.metric} "
          f"({spec.train.direction})")
    from cerebro_ops.data.estimate import check_memory
    for line in check_memory(spec, input_shape=study.provisional_shape(spec)):  # rows × bytes per row
        print(line)
    return 0


class InBackground:
    """`fn()` on a daemon thread from now on; `result()` waits for it and returns its value or raises its error."""

    def __init__(self, fn):
        self._value, self._error = None, None
        self._thread = threading.Thread(target=self._call, args=(fn,), name="in-background", daemon=True)
        self._thread.start()

    def _call(self, fn) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # noqa: BLE001 - raised where the value is asked for
            self._error = exc

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _session_warming_workers(spec):
    """The study's Spark session, its executor's Python daemon already starting (TensorFlow imported once,
    during prepare, instead of by every worker when the first epoch starts)."""
    from cerebro_ops import study
    from cerebro_ops.spark.session import warm_up_workers

    spark = study.spark_session(spec, None)
    warm_up_workers(spark)
    return spark


def cmd_run(args) -> int:
    from cerebro_ops import study
    from cerebro_ops.core.leaderboard import format_table
    from cerebro_ops.core.prepare_summary import summary_lines
    from cerebro_ops.core.search import searcher_for

    spec = study.check_spec_and_source(args.spec, _overrides(args))  # a bad spec or source stops before Spark
    study.check_memory_plan(spec)
    # TensorFlow loads for the builder check while the JVM starts (on Spark Connect: while prepare's jobs run)
    spark = InBackground(lambda: _session_warming_workers(spec))
    if spec.runtime.spark_master.startswith("sc://"):
        # A running server is joined in tenths of a second, unless TensorFlow's import beside it holds the GIL:
        # the session was ready 0.5 s after start this way, 0.8 s with the check started first
        spark.result()
    builder_check = study.start_builder_check(spec)
    run_id = args.run_id
    if args.resume and not run_id:
        run_id = study.latest_run(spec, unfinished=True)
        if run_id is None:
            print("no unfinished run to resume; starting a new one", file=sys.stderr)
    n = searcher_for(spec).total_configs
    units = 2 * spec.train.workers - 1  # per model and epoch: W train hops, then W - 1 evaluation units
    progress = Progress(n * units, spec.train.epochs, spec.train.metric, spec.train.direction)
    t0 = time.time()
    try:
        result = study.run(spec, run_id=run_id, overrides=_overrides(args), progress=progress, spark=spark.result(),
                           builder_check=builder_check)
    finally:
        progress.close()
    rows = result["leaderboard"]
    print(f"\nstudy {spec.name} run {result['run_id']} finished in {time.time() - t0:.1f} s\n")
    for line in summary_lines(study.load_run(spec, result["run_id"]).meta.get("summary") or {}):
        print(f"data: {line}")
    print(format_table(rows, spec.train.metric))
    reg = result.get("registered")
    if reg:
        print(f"\nchampion: {spec.name} v{reg.get('version')} ({reg.get('reason')})")
    return 0


def cmd_leaderboard(args) -> int:
    from cerebro_ops import study
    from cerebro_ops.core.leaderboard import format_table, leaderboard_rows
    from cerebro_ops.core.spec import load_spec

    spec = load_spec(args.spec)
    run_id = args.run_id or study.latest_run(spec)
    if run_id is None:
        print(f"no runs of study {spec.name!r} in {spec.runtime.store}", file=sys.stderr)
        return 1
    state = study.load_run(spec, run_id)
    snapshot = study.run_spec(spec, state)
    print(f"study {spec.name} run {run_id}: {state.epochs_done}/{state.epochs} epochs"
          + (f" of batch {state.current_batch + 1}/{state.batch_count}" if state.batch_count > 1 else ""))
    print(format_table(leaderboard_rows(state, snapshot.train.metric, snapshot.train.direction), snapshot.train.metric))
    return 0


def cmd_replay(args) -> int:
    from cerebro_ops.replay import replay
    from cerebro_ops.core.spec import load_spec
    spec = load_spec(args.spec)
    t0 = time.time()
    new_id, diffs = replay(spec, args.run_id)
    print(f"replayed run {args.run_id} as {new_id} in {time.time() - t0:.1f} s")
    if diffs:
        print(f"NOT reproduced ({len(diffs)} differences):\n  " + "\n  ".join(diffs[:50]))
        return 1
    print("reproduced: same configs, same hop order, same metrics (to 1e-6)")
    return 0


def cmd_make_data(args) -> int:
    from cerebro_ops.example_data import make_example_data
    path = make_example_data(args.name, Path(args.out), **({"rows": args.rows} if args.rows else {}))
    print(path)
    return 0


def cmd_jvm_archive(args) -> int:
    from cerebro_ops.spark.class_archive import build

    try:
        print(f"class archive: {build(force=args.force)}")
    except RuntimeError as exc:  # no java, or a JVM that could not write or map it: Spark starts without one
        print(f"error: no class archive built: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cerebro-ops", description="Model selection with Model Hopper Parallelism")
    sub = p.add_subparsers(dest="cmd", required=True)

    def verbose(sp):
        sp.add_argument("-v", "--verbose", action="store_true",
                        help="also print the libraries' logs (INFO logs, Spark warnings, TensorFlow's own logs)")

    def overrides(sp):
        from cerebro_ops.core.spec import OVERRIDABLE
        verbose(sp)
        for key, (path, kind) in OVERRIDABLE.items():  # the trigger Params of the Airflow form, as options
            sp.add_argument("--" + key.replace("_", "-"), type=kind, help=f"overrides {path}")

    v = sub.add_parser("validate", help="check a spec, its model builder and its data; no work is done")
    v.add_argument("spec")
    v.add_argument("--no-model-check", action="store_true", help="skip building the model (no TensorFlow)")
    overrides(v)
    v.set_defaults(fn=cmd_validate)
    r = sub.add_parser("run", help="run a study end to end with one Spark session")
    r.add_argument("spec")
    r.add_argument("--run-id")
    r.add_argument("--resume", action="store_true", help="continue the latest unfinished run (or --run-id)")
    overrides(r)
    r.set_defaults(fn=cmd_run)
    lb = sub.add_parser("leaderboard", help="show the leaderboard of the latest (or given) run")
    lb.add_argument("spec")
    lb.add_argument("--run-id")
    lb.set_defaults(fn=cmd_leaderboard)
    rp = sub.add_parser("replay", help="re-run a run with its recorded configs and check it reproduces")
    rp.add_argument("run_id")
    rp.add_argument("--spec", required=True)
    verbose(rp)
    rp.set_defaults(fn=cmd_replay)
    ja = sub.add_parser("jvm-archive", help="build the class archive a local Spark's JVM starts from (once per "
                        "install; make install runs it)")
    ja.add_argument("--force", action="store_true", help="rebuild even if this install's archive exists")
    ja.set_defaults(fn=cmd_jvm_archive)
    md = sub.add_parser("make-data", help="write an offline example dataset (dummy, flights, digits)")
    md.add_argument("name", choices=["dummy", "flights", "digits"])
    md.add_argument("--out", default=".cerebro/data")
    md.add_argument("--rows", type=int)
    md.set_defaults(fn=cmd_make_data)
    return p


def main(argv: list[str] | None = None) -> int:
    from cerebro_ops.core.output import configure

    args = build_parser().parse_args(argv)
    configure(verbose=getattr(args, "verbose", False))  # before Spark or TensorFlow start
    try:
        return args.fn(args)
    except CerebroError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def entry() -> None:
    """The `cerebro-ops` command: main(), the exit handlers (temporary files, log handlers, Spark's gateway),
    then an exit that skips the interpreter's teardown, a second or more once TensorFlow and Spark are loaded.
    Everything is finished by then: study.run drains the MLflow queue and closes its workers, and the Spark
    JVM exits on its own when this process ends."""
    code = main()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # not CPython: the usual exit
        sys.exit(code)
    run_exit_handlers()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(code or 0))


if __name__ == "__main__":
    entry()
