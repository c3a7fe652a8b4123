"""Load test of the hop server: `python -m benchmarks.hop_server_load [--workers 8,64,256] [--seconds 6]`.

One HopServer with a real MopScheduler (models = 2 x workers, at least 128) and a trivial handler; W fake workers on
loopback, each an authenticated HopClient, run zero-work units: ask for the next unit, report it at once.
The workers are threads spread over a few client processes, so the clients do not share the server's GIL.
Each level runs for a fixed time (an epoch of 4 W^2 units would take minutes at W=256) and reports:
- units/s: results the server recorded per second;
- round trip p50/p99: one hop's protocol cost as a worker sees it, `result()` plus the following `next()`
  (under load this includes waiting for a runnable unit, which is the scheduler's doing, not the wire's);
- handshake p50: connect + challenge-response;
- missed wakes: waits that ended by the server's watchdog rather than a targeted wake-up (should be 0).
Writes benchmarks/results/hop_server_load.json and prints a table.
"""
from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing as mp
import platform
import secrets
import statistics
import threading
import time
from pathlib import Path

from cerebro_ops.mop.hop_server import HopClient, HopServer
from cerebro_ops.core.scheduler import MopScheduler

RESULTS = Path(__file__).resolve().parent / "results"
CLIENT_PROCESSES = 4


class ZeroWorkHandler:
    """Payloads are empty; results are counted, not stored."""

    def __init__(self, sched: MopScheduler):
        self.sched = sched
        self.done = 0
        self.first: float | None = None
        self.last = 0.0

    def payload(self, unit) -> dict:
        return {}

    def on_done(self, worker, unit, record) -> None:
        now = time.perf_counter()
        self.first = self.first or now
        self.last = now
        self.done += 1

    def on_failed(self, worker, unit, reason, config_failed, ckpt_corrupt=False) -> None:
        self.sched.release(worker, unit)


def _client_kwargs(secret: bytes) -> dict:
    return {"secret": secret} if "secret" in inspect.signature(HopClient).parameters else {}


def _worker(host, port, secret, w, deadline, out):
    rtts: list[float] = []
    try:
        t0 = time.perf_counter()
        client = HopClient(host, port, w, **_client_kwargs(secret))
        handshake = time.perf_counter() - t0
    except OSError as exc:
        out.append((None, rtts, f"connect: {type(exc).__name__}"))
        return
    error = None
    try:
        msg = client.next()
        while not msg.get("done") and time.time() < deadline:
            t = time.perf_counter()
            client.result(msg["unit"], {"n": 0})
            msg = client.next()
            rtts.append(time.perf_counter() - t)
    except OSError as exc:
        error = f"hop: {type(exc).__name__}"
    finally:
        client.close()
    out.append((handshake, rtts, error))


def _client_process(host, port, secret, ids, deadline, queue):
    out: list = []
    threads = [threading.Thread(target=_worker, args=(host, port, secret, w, deadline, out)) for w in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(out)


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def _stop_at(server, when: float) -> None:
    """Release workers still blocked in next() once the level is over (a missing worker blocks the models
    that must visit its partition, and so everyone else, until the epoch is stopped)."""
    time.sleep(max(0.0, when - time.time()))
    if hasattr(server, "stop"):
        server.stop()
    else:
        with server.cond:
            server.error = RuntimeError("load test over")
            server.cond.notify_all()


def run_level(workers: int, seconds: float) -> dict:
    models = max(2 * workers, 128)  # enough units that the small levels do not finish before they warm up
    sched = MopScheduler([f"m{i}" for i in range(models)], workers, 1, 0)
    handler = ZeroWorkHandler(sched)
    secret = secrets.token_bytes(32)
    server_kwargs = {"secret": secret} if "secret" in inspect.signature(HopServer).parameters else {}
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    with HopServer(sched, handler, host="127.0.0.1", **server_kwargs) as server:
        deadline = time.time() + seconds + 3.0  # + the client processes' start-up
        procs = [ctx.Process(target=_client_process,
                             args=(server.host, server.port, secret, list(range(p, workers, CLIENT_PROCESSES)),
                                   deadline, queue))
                 for p in range(min(CLIENT_PROCESSES, workers))]
        for p in procs:
            p.start()
        threading.Thread(target=_stop_at, args=(server, deadline + 5.0), daemon=True).start()
        results = [x for _ in procs for x in queue.get()]
        for p in procs:
            p.join()
        missed = getattr(server, "missed_wakes", None)
    rtts = [r for _, rs, _ in results for r in rs]
    handshakes = [h for h, _, _ in results if h is not None]
    errors = sorted({e for _, _, e in results if e})
    span = (handler.last - handler.first) if handler.first else 0.0
    return {"workers": workers, "models": models, "units": handler.done,
            "units_per_s": round(handler.done / span, 1) if span else 0.0,
            "rtt_p50_ms": round(1e3 * _pct(rtts, 0.5), 3), "rtt_p99_ms": round(1e3 * _pct(rtts, 0.99), 3),
            "handshake_p50_ms": round(1e3 * statistics.median(handshakes), 3) if handshakes else None,
            "connected": len(handshakes), "client_errors": errors, "missed_wakes": missed, "epoch_finished": sched.finished()}


def run_single(hops: int = 500, connects: int = 300) -> dict:
    """One worker, no contention: what authentication adds to a connection and to a hop."""
    sched = MopScheduler([f"m{i}" for i in range(hops)], 1, 1, 0)
    secret = secrets.token_bytes(32)
    server_kwargs = {"secret": secret} if "secret" in inspect.signature(HopServer).parameters else {}
    with HopServer(sched, ZeroWorkHandler(sched), host="127.0.0.1", **server_kwargs) as server:
        setup = []
        for _ in range(connects):
            t = time.perf_counter()
            client = HopClient(server.host, server.port, 0, **_client_kwargs(secret))
            setup.append(time.perf_counter() - t)
            client.close()
        client = HopClient(server.host, server.port, 0, **_client_kwargs(secret))
        msg, rtts = client.next(), []
        while not msg.get("done"):
            t = time.perf_counter()
            client.result(msg["unit"], {"n": 0})
            msg = client.next()
            rtts.append(time.perf_counter() - t)
        client.close()
    return {"connect_p50_ms": round(1e3 * _pct(setup, 0.5), 3), "hop_rtt_p50_ms": round(1e3 * _pct(rtts, 0.5), 3),
            "hop_rtt_p99_ms": round(1e3 * _pct(rtts, 0.99), 3), "hops": len(rtts)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", default="8,64,256")
    ap.add_argument("--seconds", type=float, default=6.0, help="measured time per level")
    ap.add_argument("--out", default=str(RESULTS / "hop_server_load.json"))
    ap.add_argument("--wake-all", action="store_true",
                    help="wake every waiting worker on each change (the old notify_all), for comparison")
    args = ap.parse_args(argv)
    if args.wake_all:
        import cerebro_ops.mop.hop_server as hs
        hs._may_run_next = lambda sched, model_id: None
    single = run_single()
    print(f"one worker: connect+handshake p50 {single['connect_p50_ms']} ms, hop round trip p50 "
          f"{single['hop_rtt_p50_ms']} ms, p99 {single['hop_rtt_p99_ms']} ms")
    levels = [run_level(int(w), args.seconds) for w in args.workers.split(",")]
    report = {"machine": f"{platform.machine()} {mp.cpu_count()} cpus", "seconds_per_level": args.seconds,
              "client_processes": CLIENT_PROCESSES, "wake": "all" if args.wake_all else "targeted",
              "single_worker": single, "levels": levels}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(f"{'workers':>8} {'models':>7} {'units':>8} {'units/s':>9} {'rtt p50 ms':>11} {'rtt p99 ms':>11} "
          f"{'handshake ms':>13} {'connected':>10} {'missed':>7}")
    for r in levels:
        print(f"{r['workers']:>8} {r['models']:>7} {r['units']:>8} {r['units_per_s']:>9} {r['rtt_p50_ms']:>11} "
              f"{r['rtt_p99_ms']:>11} {r['handshake_p50_ms']!s:>13} {r['connected']:>10} {r['missed_wakes']!s:>7}")


if __name__ == "__main__":
    main()
