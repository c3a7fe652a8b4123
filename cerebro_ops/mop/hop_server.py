"""Driver side of an epoch: a small TCP server through which W workers ask for their next unit.

A worker's request blocks on its own condition variable until a unit is runnable for it or its work is
done, so nothing sleep-polls (the measured cost is ≈ 0.2 s per hop, against 1 s for a Spark barrier); a
finished unit wakes only the worker(s) that can run that model next, not all W.
Messages are JSON lines. If a worker's connection drops mid-unit (its Spark task died), or the worker goes
silent (no heartbeat for `HopTimeouts.lost_s`), the unit goes back to the scheduler as "worker lost" and
runs again when Spark retries the task.

Security: the server binds only the address the workers are told (see `epoch.WorkerSession`), and every
connection must prove it knows the epoch's secret (random, made by the driver, handed to the Spark tasks
inside `EpochTask`) before anything else:
    server -> {"hop": PROTOCOL, "nonce": Ns}
    client -> {"worker": w, "cnonce": Nc, "mac": HMAC-SHA256(secret, "hello" Ns Nc w)}
    server -> checks the mac (hmac.compare_digest); if wrong: logs the peer's address, closes; nothing else
    then both sides tag every line with HMAC(session key, direction, sequence number, line), the session
    key being HMAC(secret, "session" Ns Nc): a line cannot be forged, altered, replayed or reordered, and
    the server's first tagged reply proves to the worker that it talks to the real driver.
Hostile peers: the whole handshake has one deadline (`HANDSHAKE_TIMEOUT_S`, not per read), at most
`MAX_UNAUTHENTICATED` peers are in it at once (more are closed at once; a real worker retries until its
timeout), a hello is one flat JSON line of at most `MAX_HELLO_BYTES` (no nesting, NaN or Infinity), and every
refusal is counted by reason in `refusals`, the first `MAX_REFUSALS_KEPT` kept with their address.
The worker id is fixed by the handshake: a connection can only report the unit it was handed. Messages
are authenticated, not encrypted (units and metrics are not secret; checkpoints go through the store).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import collections
import secrets
import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cerebro_ops.core.scheduler import MopScheduler, Unit

log = logging.getLogger("cerebro_ops.mop.hop_server")

PROTOCOL = "cerebro-hop/1"
HANDSHAKE_TIMEOUT_S = 5.0      # an unauthenticated peer gets this long for the whole handshake (not per read)
MAX_HELLO_BYTES = 4096         # ... and this many bytes
MAX_UNAUTHENTICATED = 64       # peers in the handshake at once; more are closed at once (a worker retries)
MAX_REFUSALS_KEPT = 100        # refusals kept with their address (all are counted by reason)
MAX_REFUSALS_LOGGED = 20       # refusals logged one by one; after that, one line per 1000
MAX_LINE_BYTES = 64 << 20      # an authenticated message (records and payloads are a few kB)
WATCHDOG_S = 5.0               # a waiting worker re-checks this often even if no wake-up came (a safety net)
# How often the accept loop checks for shutdown: the epoch's end waits for it (socketserver's default, 0.5 s,
# was half a second of idle workers at every epoch boundary); a wake-up of an idle loop costs microseconds.
ACCEPT_POLL_S = 0.01


@dataclass(frozen=True)
class HopTimeouts:
    """How long the driver waits for workers (spec: runtime.connect_timeout_s, runtime.worker_lost_s)."""
    connect_s: float = 120.0   # every worker with work left must be connected within this (at launch, after a loss)
    lost_s: float = 60.0       # a connected worker that sends nothing (not even a heartbeat) this long is lost
    heartbeat_s: float = 5.0   # how often a worker says it is alive

    def __post_init__(self):
        if not 0 < self.heartbeat_s < self.lost_s:
            raise ValueError(f"heartbeat every {self.heartbeat_s} s must be shorter than the lost timeout {self.lost_s} s")


class Refused(Exception):
    """The peer failed the handshake or sent a line with a bad tag."""


class _Busy(Exception):
    """The server closed the connection before its challenge: too many peers in the handshake."""


class WorkersMissing(Exception):
    """Workers with work left were not connected for `HopTimeouts.connect_s`."""

    def __init__(self, missing: list[int], connected: int, workers: int, waited_s: float, never: bool):
        self.missing, self.connected, self.workers, self.waited_s, self.never = missing, connected, workers, waited_s, never
        what = "connected" if never else "came back"
        super().__init__(f"worker(s) {missing} never {what} within {waited_s:.0f} s")


class HopHandler(Protocol):
    """What the server calls back into (the epoch driver's pass): on_done and on_failed under the server's
    lock, payload right after the unit was assigned (no other worker can hold that model meanwhile)."""

    def payload(self, unit: Unit) -> dict: ...

    def on_done(self, worker: int, unit: Unit, record: dict) -> None: ...

    def on_failed(self, worker: int, unit: Unit, reason: str, config_failed: bool, ckpt_corrupt: bool) -> None: ...


# ------------------------------------------------------------------------------------------- wire format
def _hello_mac(secret: bytes, nonce: bytes, cnonce: bytes, worker: int) -> bytes:
    return hmac.digest(secret, b"hello" + nonce + cnonce + str(worker).encode(), hashlib.sha256).hex().encode()


def _session_key(secret: bytes, nonce: bytes, cnonce: bytes) -> bytes:
    return hmac.digest(secret, b"session" + nonce + cnonce, hashlib.sha256)


class _Channel:
    """JSON lines, each `<tag> <json>`, tag = first 128 bits of HMAC-SHA256(key, direction, seq, json)."""

    def __init__(self, rfile, wfile, key: bytes, send_dir: bytes, recv_dir: bytes):
        self.rfile, self.wfile, self.key = rfile, wfile, key
        self.send_dir, self.recv_dir = send_dir, recv_dir
        self.send_seq = self.recv_seq = 0
        self.lock = threading.Lock()  # a worker's heartbeat thread writes too

    def _tag(self, direction: bytes, seq: int, body: bytes) -> bytes:
        return hmac.digest(self.key, direction + seq.to_bytes(8, "big") + body, hashlib.sha256)[:16].hex().encode()

    def send(self, msg: dict) -> None:
        body = json.dumps(msg, separators=(",", ":")).encode()
        with self.lock:
            tag = self._tag(self.send_dir, self.send_seq, body)
            self.send_seq += 1
            self.wfile.write(tag + b" " + body + b"\n")
            self.wfile.flush()

    def recv(self) -> dict | None:
        """The next message, None at end of stream; Refused if its tag is wrong."""
        line = self.rfile.readline(MAX_LINE_BYTES)
        if not line:
            return None
        tag, _, body = line.rstrip(b"\n").partition(b" ")
        if not line.endswith(b"\n") or not hmac.compare_digest(tag, self._tag(self.recv_dir, self.recv_seq, body)):
            raise Refused("a message with a bad tag")
        self.recv_seq += 1
        return json.loads(body)


def _write_line(wfile, msg: dict) -> None:
    wfile.write(json.dumps(msg).encode() + b"\n")
    wfile.flush()


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def _parse_hello(line: bytes) -> dict:
    """A handshake line: one flat JSON object of strings and numbers (no NaN/Infinity, no nesting), or Refused."""
    if not line:
        raise Refused("closed before the handshake")
    try:
        msg = json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # RecursionError: deeply nested JSON
        raise Refused("malformed hello") from None
    if not isinstance(msg, dict) or not all(isinstance(v, (str, int, float)) for v in msg.values()):
        raise Refused("no handshake")
    return msg


def _read_hello(rfile) -> dict:
    return _parse_hello(rfile.readline(MAX_HELLO_BYTES))


def _recv_hello(sock, deadline: float) -> dict:
    """The peer's hello line, read straight from the socket under one deadline for all its reads."""
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            raise Refused("handshake not finished in time")
        sock.settimeout(left)
        try:
            chunk = sock.recv(MAX_HELLO_BYTES + 1 - len(buf))
        except TimeoutError:
            raise Refused("handshake not finished in time") from None
        if not chunk:
            break
        buf += chunk
        if b"\n" in buf[:-1] or len(buf) > MAX_HELLO_BYTES:  # a worker sends nothing more until it is let in
            raise Refused("hello too long" if len(buf) > MAX_HELLO_BYTES else "data after the hello")
    return _parse_hello(buf)


# ---------------------------------------------------------------------------------------------- server
class HopServer:
    """Owns the scheduler lock; calls back into the handler for unit payloads and results."""

    def __init__(self, scheduler: MopScheduler, handler: HopHandler, host: str = "127.0.0.1", *,
                 secret: bytes, timeouts: HopTimeouts = HopTimeouts()):
        if len(secret) < 16:
            raise ValueError("the hop secret must be at least 16 random bytes")
        self.scheduler = scheduler
        self.handler = handler
        self.secret = secret
        self.timeouts = timeouts
        self.keep_workers = False  # True: a worker done with this pass waits for the next (install) or stop()
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)  # the driver's wait(); notified on every change
        self._ready = {w: threading.Condition(self.lock) for w in range(scheduler.workers)}  # a waiting worker's
        self.error: BaseException | None = None
        self.stopped = False
        self.missed_wakes = 0        # waits ended by the watchdog that then found work (0 unless a wake is missed)
        self.refused: list[tuple[str, str]] = []  # (peer address, why): the first MAX_REFUSALS_KEPT
        self.refusals: collections.Counter[str] = collections.Counter()  # why -> how many (a fixed set of reasons)
        self._gate = threading.Lock()  # guards the two above and the count of peers in the handshake
        self._unauthenticated = 0
        self._owner: dict[int, object] = {}  # worker -> the connection its running unit was handed to
        self._conns: dict[int, int] = {}     # worker -> its open authenticated connections
        self._absent_since = {w: time.monotonic() for w in range(scheduler.workers)}
        self._ever: set[int] = set()         # workers that connected at least once
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                server._serve(self.request, self.rfile, self.wfile, self.client_address)

            def finish(self):
                try:
                    super().finish()
                except OSError:
                    pass

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 1024  # W workers connect at once (the default backlog of 5 drops connections)

            def handle_error(self, request, client_address):
                log.debug("hop connection from %s ended with an error", client_address, exc_info=True)

            def process_request(self, request, client_address):
                # one thread per connection, but only MAX_UNAUTHENTICATED of them for peers not yet let in
                if not server._admit():
                    server._refuse(f"{client_address[0]}:{client_address[1]}", "too many unauthenticated connections")
                    self.shutdown_request(request)
                    return
                super().process_request(request, client_address)

        self._server = Server((host, 0), Handler)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(ACCEPT_POLL_S,), name="hop-server",
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ connections
    def _admit(self) -> bool:
        with self._gate:
            if self._unauthenticated >= MAX_UNAUTHENTICATED:
                return False
            self._unauthenticated += 1
            return True

    def _refuse(self, address: str, why: str) -> None:
        """Count (and keep, log: up to a bound) one refused peer. ``why`` is one of a fixed set of reasons."""
        with self._gate:
            self.refusals[why] += 1
            n = sum(self.refusals.values())
            if len(self.refused) < MAX_REFUSALS_KEPT:
                self.refused.append((address, why))
        if n <= MAX_REFUSALS_LOGGED:
            log.warning("hop server: refused the connection from %s: %s", address, why)
        elif n % 1000 == 0:
            log.warning("hop server: %d connections refused so far (%s)", n, dict(self.refusals))

    def _accept(self, sock, rfile, wfile) -> tuple[int, _Channel]:
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
        nonce = secrets.token_bytes(16)
        sock.settimeout(HANDSHAKE_TIMEOUT_S)
        _write_line(wfile, {"hop": PROTOCOL, "nonce": nonce.hex()})
        hello = _recv_hello(sock, deadline)
        worker, cnonce, mac = hello.get("worker"), hello.get("cnonce"), hello.get("mac")
        if type(worker) is not int or not isinstance(cnonce, str) or not isinstance(mac, str) \
                or len(cnonce) > 128 or len(mac) > 128:
            raise Refused("no handshake")
        try:
            cnonce = bytes.fromhex(cnonce)
        except ValueError:
            raise Refused("no handshake") from None
        if len(cnonce) < 16 or not hmac.compare_digest(mac.encode(), _hello_mac(self.secret, nonce, cnonce, worker)):
            raise Refused("wrong secret")
        if not 0 <= worker < self.scheduler.workers:
            raise Refused("not a worker of this epoch")
        channel = _Channel(rfile, wfile, _session_key(self.secret, nonce, cnonce), b"S", b"C")
        channel.send({"ok": True})  # tagged: proves to the worker that this server knows the secret too
        return worker, channel

    def _serve(self, sock, rfile, wfile, peer) -> None:
        address = f"{peer[0]}:{peer[1]}"
        accepted = self._handshake(sock, rfile, wfile, address)
        if accepted is None:
            return
        worker, channel = accepted
        sock.settimeout(self.timeouts.lost_s)  # a heartbeat at least every heartbeat_s keeps reads alive
        with self.lock:
            self._conns[worker] = self._conns.get(worker, 0) + 1
            self._absent_since.pop(worker, None)
            self._ever.add(worker)
            self.cond.notify_all()
        conn = object()
        held: list[Unit | None] = [None]  # the unit this connection runs now (released below if it is lost)
        try:
            self._converse(worker, conn, channel, peer, held)
        except TimeoutError:
            log.warning("worker %d (%s) sent nothing for %.0f s: lost", worker, address, self.timeouts.lost_s)
        except Refused as exc:
            log.warning("hop server: closing the connection of worker %d (%s): %s", worker, address, exc)
        except (ConnectionError, OSError):
            pass
        except Exception as exc:  # a bug on our side: stop the epoch loudly rather than hang
            log.exception("hop server error")
            with self.lock:
                self.error = exc
                self._wake_all()
        finally:
            self._release(worker, conn, held[0])

    def _handshake(self, sock, rfile, wfile, address: str):
        """(worker, channel) of a peer that passed the handshake; None (logged) for any other."""
        try:
            return self._accept(sock, rfile, wfile)
        except Exception as exc:  # noqa: BLE001 - whatever a peer sends before it is let in only refuses it
            why = str(exc) if isinstance(exc, Refused) else (
                "handshake not finished in time" if isinstance(exc, TimeoutError) else "connection error"
                if isinstance(exc, OSError) else "malformed hello")
            self._refuse(address, why)
            return None
        finally:
            with self._gate:
                self._unauthenticated -= 1

    def _converse(self, worker: int, conn: object, channel, peer, held: list) -> None:
        """Answer one worker's messages until it hangs up: next unit, result or failure, heartbeats."""
        while True:
            msg = channel.recv()
            if msg is None:
                return
            op = msg.get("op")
            if op == "hb":
                continue
            if op == "next" and held[0] is None:
                held[0] = self._next(worker, conn)
                channel.send({"done": True} if held[0] is None
                             else {"unit": _unit_dict(held[0]), **self.handler.payload(held[0])})
            elif op in ("result", "failed") and held[0] is not None and _unit_from(msg["unit"]) == held[0]:
                if op == "result":  # the worker's address as this server saw it: which host ran the hop
                    msg["record"] = {**msg["record"], "peer": peer[0]}
                unit = held[0]
                finished = self._finish(worker, conn, unit, msg)
                held[0] = None
                if not finished:
                    log.warning("worker %d (%s:%s) reported %s, which was taken back; closing", worker, *peer[:2],
                                unit)
                    return
                channel.send({"ok": True})
            else:
                raise Refused(f"an unexpected message {op!r}")

    def _release(self, worker: int, conn: object, in_flight: Unit | None) -> None:
        with self.lock:
            # a retried task may already run the same unit again: only release our own
            if in_flight is not None and self.scheduler.running.get(worker) == in_flight \
                    and self._owner.get(worker) is conn:
                log.warning("worker %s lost while running %s; the unit will run again", worker, in_flight)
                self.handler.on_failed(worker, in_flight, "worker lost", False, False)
            self._conns[worker] -= 1
            if not self._conns[worker]:
                self._absent_since[worker] = time.monotonic()
            self._wake_all()

    # ------------------------------------------------------------------ scheduling
    def _finish(self, worker: int, conn: object, unit: Unit, msg: dict) -> bool:
        """Apply a worker's result or failure; False if the unit is no longer this connection's."""
        with self.lock:
            if self._owner.get(worker) is not conn or self.scheduler.running.get(worker) != unit:
                return False
            if msg["op"] == "result":
                self.handler.on_done(worker, unit, msg["record"])
                self.scheduler.complete(worker, unit)
                self._wake(_may_run_next(self.scheduler, unit.model_id))
            else:
                self.handler.on_failed(worker, unit, str(msg.get("reason", "")), bool(msg.get("config_failed")),
                                       bool(msg.get("ckpt_corrupt")))
                self._wake_all()  # rare; a failed model can leave other workers with nothing to do
            return True

    def _next(self, worker: int, conn: object) -> Unit | None:
        ready = self._ready[worker]
        with self.lock:
            woken = True
            while True:
                if self.error is not None or self.stopped:
                    return None
                if worker in self.scheduler.running:  # a retried task of the same worker: old unit is lost
                    lost = self.scheduler.running[worker]
                    self.handler.on_failed(worker, lost, "worker restarted", False, False)
                    self._wake_all()
                unit = self.scheduler.assign(worker)
                if unit is not None:
                    if not woken:
                        self.missed_wakes += 1
                        log.debug("worker %d found %s only on the watchdog's re-check", worker, unit)
                    self._owner[worker] = conn
                    return unit
                if self.scheduler.worker_done(worker):
                    self.cond.notify_all()
                    if not self.keep_workers:
                        return None
                    # kept for the next pass (install) or until stop(): wait, a wake-up is not a missed one
                    ready.wait(WATCHDOG_S)
                    continue
                woken = ready.wait(WATCHDOG_S)

    def _wake(self, workers: set[int] | None) -> None:
        if workers is None:
            self._wake_all()
            return
        for w in workers:
            self._ready[w].notify_all()
        self.cond.notify_all()

    def _wake_all(self) -> None:
        for ready in self._ready.values():
            ready.notify_all()
        self.cond.notify_all()

    # ------------------------------------------------------------------ driver side
    def wait(self, until: Callable[[], bool]) -> None:
        """Block until the scheduler is finished, the server failed, or until() is true (checked on wake).
        Raises WorkersMissing when a worker with work left has not been connected for connect_s."""
        with self.lock:
            while not (self.error is not None or self.scheduler.finished() or until()):
                missing, wait_s = self._overdue()
                if missing:
                    connected = sum(1 for n in self._conns.values() if n)
                    raise WorkersMissing(missing, connected, self.scheduler.workers, self.timeouts.connect_s,
                                         never=not set(missing) & self._ever)
                self.cond.wait(wait_s)

    def _overdue(self) -> tuple[list[int], float | None]:
        """Absent workers with work left past the connect timeout, and how long until the next one is."""
        now, limit = time.monotonic(), self.timeouts.connect_s
        waiting = {w: since for w, since in self._absent_since.items() if not self.scheduler.worker_done(w)}
        missing = sorted(w for w, since in waiting.items() if now - since >= limit)
        soonest = min((since + limit - now for since in waiting.values()), default=None)
        return missing, (max(0.01, soonest) if soonest is not None else None)

    def install(self, scheduler: MopScheduler, handler: HopHandler) -> None:
        """Serve the next pass (a later epoch) to the workers still connected: their waiting `next` gets its
        units. Only between passes: the previous scheduler must be finished."""
        if scheduler.workers != self.scheduler.workers:
            raise ValueError(f"a pass for {scheduler.workers} workers on a server of {self.scheduler.workers}")
        with self.lock:
            if not self.scheduler.finished():
                raise RuntimeError("the hop server's pass is not finished")
            self.scheduler, self.handler = scheduler, handler
            self._wake_all()

    def stop(self) -> None:
        """Answer every waiting and later `next` with done (the epoch is over or abandoned)."""
        with self.lock:
            self.stopped = True
            self._wake_all()

    def wake(self) -> None:
        """Make wait() check its condition again (e.g. the launcher of the workers returned)."""
        with self.lock:
            self.cond.notify_all()


def _may_run_next(sched: MopScheduler, model_id: str) -> set[int] | None:
    """The workers that may now run a unit of this model (it just finished one); None (= all) if the
    scheduler's state does not say. Only they are woken: waking all W per hop makes 256 workers crawl."""
    try:
        model = sched.models[model_id]
        if model.failed:
            return None
        if model.trained < sched.workers:
            return {model.order[model.trained]}  # its next hop's partition
        if model.evaluated < getattr(sched, "evals", 0):
            return {model.order[model.evaluated]}  # its next evaluation's partition (evaluation chain)
        return set()  # trained everywhere (its last hop evaluated it): nobody waits for it
    except (AttributeError, KeyError, IndexError, TypeError):
        return None


def _unit_dict(u: Unit) -> dict:
    return {"model_id": u.model_id, "partition": u.partition, "kind": u.kind, "hop": u.hop}


def _unit_from(d: dict) -> Unit:
    return Unit(d["model_id"], int(d["partition"]), d["kind"], int(d["hop"]))


# ---------------------------------------------------------------------------------------------- client
class HopClient:
    """Worker side: one authenticated connection per worker task, with an optional heartbeat thread."""

    def __init__(self, host: str, port: int, worker: int, *, secret: bytes, timeout: float = 30.0,
                 heartbeat_s: float | None = None):
        if not secret:
            raise ValueError("the worker needs the epoch's hop secret (EpochTask.secret)")
        self.worker = worker
        deadline, pause = time.monotonic() + timeout, 0.05
        while True:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.rfile = self.sock.makefile("rb")
            self.wfile = self.sock.makefile("wb")
            try:
                self.channel = self._handshake(secret)
                break
            except _Busy:
                self.close()
                if time.monotonic() + pause > deadline:
                    raise ConnectionError(f"the hop server stayed busy with other connections for {timeout:.0f} s") \
                        from None
                time.sleep(pause)  # its handshake slots are taken (by peers without the secret?): try again
                pause = min(pause * 2, 1.0)
            except BaseException:
                self.close()
                raise
        self.sock.settimeout(None)  # a worker waits as long as the driver makes it (the driver has the timeouts)
        self._stop = threading.Event()
        if heartbeat_s:
            threading.Thread(target=self._beat, args=(heartbeat_s,), name=f"hop-heartbeat-{worker}",
                             daemon=True).start()

    def _handshake(self, secret: bytes) -> _Channel:
        try:
            challenge = _read_hello(self.rfile)
        except (Refused, ConnectionResetError):  # closed before its challenge: the server is at its cap
            raise _Busy from None
        if challenge.get("hop") != PROTOCOL:
            raise ConnectionError(f"not a {PROTOCOL} server: {challenge.get('hop')!r}")
        nonce, cnonce = bytes.fromhex(challenge["nonce"]), secrets.token_bytes(16)
        _write_line(self.wfile, {"worker": self.worker, "cnonce": cnonce.hex(),
                                 "mac": _hello_mac(secret, nonce, cnonce, self.worker).decode()})
        channel = _Channel(self.rfile, self.wfile, _session_key(secret, nonce, cnonce), b"C", b"S")
        try:
            welcome = channel.recv()
        except Refused:
            raise ConnectionError("the hop server does not know this epoch's secret") from None
        if welcome != {"ok": True}:
            raise ConnectionError("the hop server refused this worker (a wrong or stale epoch secret?)")
        return channel

    def _beat(self, every: float) -> None:
        while not self._stop.wait(every):
            try:
                self.channel.send({"op": "hb"})
            except (OSError, ValueError):
                return  # the connection is gone; the main thread finds out on its next call

    def _call(self, msg: dict) -> dict:
        self.channel.send(msg)
        try:
            reply = self.channel.recv()
        except Refused:
            raise ConnectionError("the hop server's reply failed its check") from None
        if reply is None:
            raise ConnectionError("hop server closed the connection")
        return reply

    def next(self) -> dict:
        return self._call({"op": "next"})

    def result(self, unit: dict, record: dict) -> None:
        self._call({"op": "result", "unit": unit, "record": record})

    def failed(self, unit: dict, reason: str, config_failed: bool, ckpt_corrupt: bool = False) -> None:
        self._call({"op": "failed", "unit": unit, "reason": reason, "config_failed": config_failed,
                    "ckpt_corrupt": ckpt_corrupt})

    def close(self) -> None:
        stop = getattr(self, "_stop", None)
        if stop is not None:
            stop.set()
        for f in (self.rfile, self.wfile):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
