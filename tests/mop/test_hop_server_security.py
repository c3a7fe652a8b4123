"""The hop protocol on a network: only workers that know the epoch's secret get units or report results,
the server listens only where the workers are told, and neither a missing nor a silent worker makes the
driver wait forever. Fake workers, no Spark."""
from __future__ import annotations

import json
import logging
import secrets
import socket
import time

import pytest

from cerebro_ops.mop import epoch as epoch_mod
from cerebro_ops.mop.epoch import EpochContext, EpochDriver, WorkerSession, load_records
from cerebro_ops.core.errors import ClusterError
from cerebro_ops.mop.hop_server import HopClient, HopServer, HopTimeouts
from cerebro_ops.core.scheduler import MopScheduler
from cerebro_ops.store import Store

from tests.fake_workers import ServerCapture, fake_launcher

CONFIGS = {f"m{i}": {"i": i} for i in range(4)}
W = 3
SECRET = secrets.token_bytes(32)


class Recorder:
    """A handler that keeps what the server reports to it."""

    def __init__(self, sched):
        self.sched, self.done, self.failed = sched, [], []

    def payload(self, unit):
        return {"p": 1}

    def on_done(self, worker, unit, record):
        self.done.append((worker, unit, record))

    def on_failed(self, worker, unit, reason, config_failed, ckpt_corrupt=False):
        self.failed.append((worker, unit, reason))
        self.sched.release(worker, unit)


@pytest.fixture
def server():
    sched = MopScheduler(["a", "b"], 2, 1, 0)
    with HopServer(sched, Recorder(sched), secret=SECRET,
                   timeouts=HopTimeouts(connect_s=5, lost_s=0.6, heartbeat_s=0.1)) as srv:
        yield srv


def _ctx(tmp_path, workers=W):
    store = Store((tmp_path / "run").as_uri())
    return store, EpochContext(store, 1, CONFIGS, {m: None for m in CONFIGS}, "x:y", 0, workers, "file:///d", {})


def _refused_line(caplog, address):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and address in r.getMessage()]


# ------------------------------------------------------------------------------------- authentication
def test_a_client_with_the_wrong_secret_is_refused_logged_and_gets_nothing(server, caplog):
    with pytest.raises(ConnectionError):
        HopClient(server.host, server.port, 0, secret=secrets.token_bytes(32))
    time.sleep(0.1)
    assert not server.scheduler.running, "no unit was assigned"
    assert server.handler.done == [] and server.handler.failed == []
    (address, why), = server.refused
    assert address.startswith("127.0.0.1:") and why == "wrong secret"
    assert _refused_line(caplog, address), "the refusal names the peer's address"


def test_a_correct_client_gets_units_and_its_results_are_recorded(server):
    client = HopClient(server.host, server.port, 0, secret=SECRET)
    msg = client.next()
    assert msg["p"] == 1 and msg["unit"]["partition"] == 0
    client.result(msg["unit"], {"loss": 0.5})
    client.close()
    ((worker, unit, record),) = server.handler.done
    assert (worker, unit.partition, record) == (0, 0, {"loss": 0.5, "peer": "127.0.0.1"})  # peer: the server's view
    assert server.refused == []


def test_a_raw_socket_without_handshake_is_refused_with_its_address(server, caplog):
    with socket.create_connection((server.host, server.port)) as raw:
        challenge = json.loads(raw.makefile("rb").readline())
        assert set(challenge) == {"hop", "nonce"}
        forged = {"op": "result", "worker": 0, "unit": {"model_id": "a", "partition": 0, "kind": "train", "hop": 0},
                  "record": {"loss": 0.0}}
        raw.sendall(json.dumps(forged).encode() + b"\n")
        assert raw.recv(100) == b"", "the server hung up"
        address = "{}:{}".format(*raw.getsockname())
    time.sleep(0.1)
    assert server.refused == [(address, "no handshake")]
    assert _refused_line(caplog, address)
    assert server.handler.done == [] and not server.scheduler.running


def test_a_tampered_message_on_an_authenticated_connection_closes_it_and_records_nothing(server, caplog):
    client = HopClient(server.host, server.port, 0, secret=SECRET)
    unit = client.next()["unit"]
    body = json.dumps({"op": "result", "unit": unit, "record": {"loss": -1}}).encode()
    client.wfile.write(b"0" * 32 + b" " + body + b"\n")  # right framing, wrong tag
    client.wfile.flush()
    assert client.rfile.readline() == b""
    client.close()
    time.sleep(0.1)
    assert server.handler.done == []
    assert [(w, u.partition, r) for w, u, r in server.handler.failed] == [(0, 0, "worker lost")]
    assert any("bad tag" in m for m in (r.getMessage() for r in caplog.records))


def test_the_handshake_also_proves_the_server(server):
    impostor = socket.create_server(("127.0.0.1", 0))
    port = impostor.getsockname()[1]

    def answer():
        conn, _ = impostor.accept()
        conn.sendall(json.dumps({"hop": "cerebro-hop/1", "nonce": "00" * 16}).encode() + b"\n")
        conn.makefile("rb").readline()
        conn.sendall(b"0" * 32 + b' {"ok":true}\n')
        conn.close()

    import threading
    threading.Thread(target=answer, daemon=True).start()
    with pytest.raises(ConnectionError, match="secret"):
        HopClient("127.0.0.1", port, 0, secret=SECRET)
    impostor.close()


def test_forged_results_in_a_real_epoch_are_not_recorded(tmp_path):
    store, ctx = _ctx(tmp_path)
    workers = fake_launcher(W)

    def launch(task):
        with socket.create_connection((task.host, task.port)) as raw:
            raw.makefile("rb").readline()
            raw.sendall(json.dumps({"op": "result", "worker": 0, "record": {"forged": True},
                                    "unit": {"model_id": "m0", "partition": 0, "kind": "train", "hop": 0}}).encode()
                        + b"\n")
            assert raw.recv(10) == b""
        workers(task)

    res = EpochDriver(ctx, launch).run()
    recs = load_records(store, 1)
    assert len(recs) == len(CONFIGS) * W and all(r["status"] == "ok" for r in recs)
    assert not any(r.get("forged") for r in recs)
    assert all(r.status == "RUNNING" for r in res.models.values())


# -------------------------------------------------------------------------------------------- address


@pytest.mark.parametrize("env, suggested", [(None, None), ("localhost", None), (None, "localhost")])
def test_the_server_binds_exactly_the_address_the_workers_are_told(tmp_path, monkeypatch, env, suggested):
    capture = ServerCapture()
    monkeypatch.setattr(epoch_mod, "HopServer", capture)
    if env:
        monkeypatch.setenv(epoch_mod.DRIVER_HOST_ENV, env)
    else:
        monkeypatch.delenv(epoch_mod.DRIVER_HOST_ENV, raising=False)
    tasks = []
    workers = fake_launcher(W)

    class Launcher:
        def __call__(self, task):
            tasks.append(task)
            workers(task)

        def advertised_host(self):
            return suggested

    _, ctx = _ctx(tmp_path)
    EpochDriver(ctx, Launcher()).run()
    (task,), (srv,) = tasks, capture.servers
    assert srv._server.server_address == (task.host, task.port) == ("127.0.0.1", srv.port)
    assert len(task.secret) == 32 and task.secret.hex() not in repr(task)


def test_a_driver_host_that_is_not_this_host_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv(epoch_mod.DRIVER_HOST_ENV, "192.0.2.7")  # TEST-NET-1: never a local address
    _, ctx = _ctx(tmp_path)
    with pytest.raises(ClusterError, match="CEREBRO_DRIVER_HOST.*cannot listen on 192.0.2.7"):
        EpochDriver(ctx, fake_launcher(W)).run()


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::", "[::]", "0"])
def test_a_wildcard_driver_host_is_refused(tmp_path, monkeypatch, wildcard):
    """0.0.0.0 would make the hop server listen on every interface (and tell the workers an address they
    cannot connect to): refused before anything listens."""
    monkeypatch.setenv(epoch_mod.DRIVER_HOST_ENV, wildcard)
    capture = ServerCapture()
    monkeypatch.setattr(epoch_mod, "HopServer", capture)
    _, ctx = _ctx(tmp_path)
    with pytest.raises(ClusterError) as ei:
        EpochDriver(ctx, fake_launcher(W)).run()
    assert ei.value.field == "CEREBRO_DRIVER_HOST" and "wildcard address" in str(ei.value)
    assert capture.servers == []


def test_the_address_rule_prefers_argument_then_env_then_spark(monkeypatch):
    class Launcher:
        def __call__(self, task):
            pass

        def advertised_host(self):
            return "10.1.2.3"

    monkeypatch.delenv(epoch_mod.DRIVER_HOST_ENV, raising=False)
    assert WorkerSession(Launcher()).advertised_host()[0] == "10.1.2.3"
    assert WorkerSession(lambda t: None).advertised_host() == ("127.0.0.1", "the default")
    monkeypatch.setenv(epoch_mod.DRIVER_HOST_ENV, "10.9.9.9")
    assert WorkerSession(Launcher()).advertised_host() == ("10.9.9.9", "CEREBRO_DRIVER_HOST")
    assert WorkerSession(Launcher(), host="127.0.0.1").advertised_host()[0] == "127.0.0.1"


# ------------------------------------------------------------------------------------ no waiting forever
class ShortLauncher:
    """Runs fewer fake workers than the epoch has, as a Spark application with too few slots would."""

    def __init__(self, running):
        self.run = fake_launcher(running)
        self.running = running
        self.cancelled = False

    def __call__(self, task):
        self.run(task)

    def task_slots(self):
        return self.running

    def cancel(self):
        self.cancelled = True


def test_fewer_workers_than_the_epoch_needs_is_a_clear_error_within_the_timeout(tmp_path):
    store, ctx = _ctx(tmp_path, workers=2)
    launcher = ShortLauncher(1)
    t0 = time.monotonic()
    with pytest.raises(ClusterError) as err:
        EpochDriver(ctx, launcher, timeouts=HopTimeouts(connect_s=1.0, lost_s=5, heartbeat_s=1)).run()
    assert time.monotonic() - t0 < 6
    msg = str(err.value)
    assert "train.workers" in msg and "only 1 of 2 workers connected within 1 s" in msg
    assert "the Spark application has 1 task slot(s)" in msg and "at least 2 free task slots" in msg
    assert launcher.cancelled, "the job's waiting tasks were cancelled"
    assert all(r["partition"] == 0 for r in load_records(store, 1)), "only worker 0 ever ran"


def test_a_silent_worker_is_lost_its_unit_runs_again_and_the_epoch_completes(tmp_path, caplog):
    store, ctx = _ctx(tmp_path)
    res = EpochDriver(ctx, fake_launcher(W, silent_once=("m1", 2)),
                      timeouts=HopTimeouts(connect_s=10, lost_s=0.6, heartbeat_s=0.1)).run()
    assert all(r.status == "RUNNING" for r in res.models.values())
    assert sorted(json.loads(store.read_bytes(res.models["m1"].ckpt["ckpt"]))) == [0, 1, 2]
    retried = [(r["model_id"], r["partition"], r["reason"]) for r in res.records if r["status"] == "retry"]
    assert retried == [("m1", 2, "worker lost")]
    assert len(load_records(store, 1)) == len(CONFIGS) * W
    assert any("sent nothing for" in r.getMessage() for r in caplog.records)


def test_a_busy_worker_with_a_heartbeat_is_not_lost_and_one_without_is(server):
    beating = HopClient(server.host, server.port, 0, secret=SECRET, heartbeat_s=0.1)
    unit = beating.next()["unit"]
    time.sleep(1.2)  # twice the lost timeout, heartbeat on
    beating.result(unit, {"loss": 0.1})
    beating.close()
    assert [u.partition for _, u, _ in server.handler.done] == [0] and server.handler.failed == []

    silent = HopClient(server.host, server.port, 1, secret=SECRET)  # no heartbeat
    unit = silent.next()["unit"]
    time.sleep(1.2)
    with pytest.raises(ConnectionError):
        silent.result(unit, {"loss": 0.2})
    silent.close()
    assert [(w, r) for w, _, r in server.handler.failed] == [(1, "worker lost")]
    assert len(server.handler.done) == 1, "the late result was not recorded"
