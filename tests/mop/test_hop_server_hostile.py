"""The hop server under hostile peers on its port: idle sockets, slow-loris handshakes and malformed hellos
(deeply nested JSON, Infinity, oversized) are refused, counted and bounded, while a real epoch's workers are
still served. Loopback only, fake workers, no Spark."""
from __future__ import annotations

import json
import secrets
import socket
import threading
import time


from cerebro_ops.mop import epoch as epoch_mod
from cerebro_ops.mop import hop_server
from cerebro_ops.mop.epoch import EpochContext, EpochDriver, load_records
from cerebro_ops.mop.hop_server import HopServer
from cerebro_ops.store import Store

from tests.fake_workers import ServerCapture, fake_launcher

CONFIGS = {f"m{i}": {"i": i} for i in range(4)}
W = 3
DEADLINE_S = 2.0
IDLE = 1000
SLOW = 20


def hello_then(host, port, line: bytes) -> bytes:
    """Connect, read the challenge, send `line`; what the server answers before it hangs up."""
    with socket.create_connection((host, port), timeout=10) as s:
        s.makefile("rb").readline()
        s.sendall(line)
        return s.recv(100)


def slow_loris(host, port, held: list) -> None:
    """One byte of a hello every 0.2 s, never a newline: how long until the server hangs up."""
    start = time.monotonic()
    with socket.create_connection((host, port), timeout=10) as s:
        s.makefile("rb").readline()
        try:
            while time.monotonic() - start < 30:
                s.sendall(b" ")
                time.sleep(0.2)
        except OSError:
            pass
    held.append(time.monotonic() - start)


def test_idle_slow_and_malformed_peers_are_refused_counted_and_the_epoch_is_served(tmp_path, monkeypatch):
    monkeypatch.setattr(hop_server, "HANDSHAKE_TIMEOUT_S", DEADLINE_S)
    capture = ServerCapture()
    monkeypatch.setattr(epoch_mod, "HopServer", capture)
    store = Store((tmp_path / "run").as_uri())
    ctx = EpochContext(store, 1, CONFIGS, {m: None for m in CONFIGS}, "x:y", 0, W, "file:///d", {})
    workers = fake_launcher(W)
    seen = {}
    idle, held, slow = [], [], []

    def launch(task):
        host, port = task.host, task.port
        seen["malformed"] = [
            hello_then(host, port, b"[" * 3000 + b"\n"),  # deeper than Python's recursion limit
            hello_then(host, port, b'{"worker": Infinity, "cnonce": "' + b"0" * 32 + b'", "mac": "x"}\n'),
            hello_then(host, port, b"x" * 5000),  # more than a hello may be
        ]
        for _ in range(SLOW):
            t = threading.Thread(target=slow_loris, args=(host, port, held), daemon=True)
            t.start()
            slow.append(t)
        time.sleep(0.3)  # the slow peers are in the handshake before the flood
        for _ in range(IDLE):
            idle.append(socket.create_connection((host, port), timeout=10))
        seen["threads"] = threading.active_count()
        seen["start"] = time.monotonic()
        workers(task)  # the real workers, while the peers above hold or retry their connections
        seen["end"] = time.monotonic()

    try:
        before = threading.active_count()
        res = EpochDriver(ctx, launch).run()
        for t in slow:
            t.join(10)
    finally:
        for s in idle:
            s.close()
    (server,) = capture.servers

    # the epoch completed and every unit was recorded, within one handshake deadline and a few seconds
    recs = load_records(store, 1)
    assert len(recs) == len(CONFIGS) * W and all(r["status"] == "ok" for r in recs)
    assert all(r.status == "RUNNING" for r in res.models.values())
    served_s = seen["end"] - seen["start"]
    print(f"workers served in {served_s:.2f} s; slow-loris held {max(held):.2f} s; refusals {dict(server.refusals)}; "
          f"threads {seen['threads'] - before} above the baseline")
    assert served_s < DEADLINE_S + 6, f"the workers waited {served_s:.1f} s"
    # slow-loris: one deadline for the whole handshake, however often a byte arrives
    assert len(held) == SLOW and max(held) < DEADLINE_S + 1.5, held
    # malformed hellos are refused (the server hangs up) and counted as such
    assert seen["malformed"] == [b"", b"", b""]
    assert server.refusals["malformed hello"] == 2 and server.refusals["hello too long"] == 1
    assert server.refusals["handshake not finished in time"] >= SLOW
    assert server.refusals["too many unauthenticated connections"] >= IDLE - hop_server.MAX_UNAUTHENTICATED
    assert sum(server.refusals.values()) >= IDLE + SLOW + 3
    # bounded: the kept refusals, and the threads (one per peer in the handshake, at most the cap)
    assert len(server.refused) == hop_server.MAX_REFUSALS_KEPT
    assert seen["threads"] - before <= hop_server.MAX_UNAUTHENTICATED + SLOW + 10, seen["threads"]


def test_a_hello_with_infinity_or_deep_nesting_is_refused_not_raised(monkeypatch):
    from cerebro_ops.core.scheduler import MopScheduler

    sched = MopScheduler(["a"], 1, 1, 0)

    class NoHandler:
        def payload(self, unit):
            return {}

    with HopServer(sched, NoHandler(), secret=secrets.token_bytes(32)) as srv:
        for line in (b'{"worker": 1e999, "cnonce": "00", "mac": "x"}\n', b'{"worker": NaN}\n',
                     b"[" * 2000 + b"]" * 2000 + b"\n", b'{"worker": [0], "cnonce": "x", "mac": "y"}\n',
                     json.dumps({"worker": True, "cnonce": "00" * 16, "mac": "0" * 64}).encode() + b"\n"):
            assert hello_then(srv.host, srv.port, line) == b""
        time.sleep(0.2)
    assert [why for _, why in srv.refused] == ["no handshake", "malformed hello", "malformed hello", "no handshake",
                                               "no handshake"]
    assert srv.error is None
