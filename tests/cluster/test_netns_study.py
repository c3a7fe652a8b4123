"""A study across three real hosts (network namespaces on one bridge, tests/cluster/topology.py): the CLI
and the Spark driver with its hop server on the driver host, a Spark standalone master there too, one Spark
worker on each worker host, the store on the filesystem they share. The hop records say which host ran each
hop (the address the hop server saw), so the test can check the traffic crossed the links. Then the faults:
a worker host dies mid-epoch, later the driver dies mid-epoch, and `run --resume` finishes the run.
"""
from __future__ import annotations

import os
import signal
import time

import pytest

from tests.integration.conftest import check_hop_invariants

from . import topology as topo
from .conftest import (CONFIGS, EPOCHS, PY, REPO, assert_same_leaderboard, fingerprint, hop_records, run_cli,
                       study_spec)

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.spark]

WK1, WK2 = topo.WORKERS


def test_study_runs_across_hosts_and_matches_local(netns_run, local_reference):
    spec, store, board = netns_run
    records = hop_records(store, "clean")
    check_hop_invariants(records, sorted(board), workers=topo.STUDY_WORKERS, epochs=2)
    ok = [r for r in records if r["status"] == "ok"]
    # every hop came over a veth link from a worker host: the hop server saw the worker hosts' addresses
    assert {r["peer"] for r in ok} == {w.ip for w in topo.WORKERS}
    # within an epoch (one Spark job) one host serves each partition, in its own processes; the next
    # epoch's job may place the partitions the other way round
    for epoch in (1, 2):
        for part in range(topo.STUDY_WORKERS):
            assert len({r["peer"] for r in ok if (r["epoch"], r["partition"]) == (epoch, part)}) == 1, (epoch, part)
    pids = {ip: {r["pid"] for r in ok if r["peer"] == ip} for ip in (WK1.ip, WK2.ip)}
    assert pids[WK1.ip] and pids[WK2.ip] and not pids[WK1.ip] & pids[WK2.ip], pids
    assert_same_leaderboard(board, local_reference)


def _wait_for(what: str, cond, proc, timeout: float = 600, poll: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = cond()
        if got:
            return got
        if proc.poll() is not None:
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}")
        time.sleep(poll)
    pytest.fail(f"timed out waiting for {what}")


def test_worker_host_lost_then_driver_lost_and_resume(hosts, spark_cluster, dummy_data, cluster_tmp, netns_run):
    tmp = cluster_tmp / "netns-faults"
    store = tmp / "store"
    release = tmp / "release-hold"
    spec = study_spec(tmp / "spec.yaml", dummy_data, store, spark_cluster.master, f"sqlite:///{tmp / 'mlflow.db'}")
    # per epoch: every model trains on every partition, then W - 1 validation links
    units = CONFIGS * (2 * topo.STUDY_WORKERS - 1)
    # Both faults are placed by the driver's fault hooks (cerebro_ops/mop/epoch.py), not by timing: the hop
    # server holds after wk2's first hop, so wk2 still has units of epoch 1 when its host dies, and the
    # driver kills itself right after the first record of epoch 2, so epoch 2 is cut mid-way.
    env = spark_cluster.driver_env(CEREBRO_FAULT_HOLD_AFTER_PEER=f"{WK2.ip}:{release}",
                                   CEREBRO_FAULT_KILL_AFTER_HOPS=str(units + 1))
    cli = hosts.spawn(topo.DRIVER, [PY, "-m", "cerebro_ops.cli", "run", str(spec), "--run-id", "faulted"],
                      "cli-faulted", env=env, cwd=REPO)
    try:
        # 1. worker host wk2 loses power after its first hop of epoch 1: its Spark worker JVM, executor and
        #    Python workers die; Spark reruns the lost task on wk1's spare core and epoch 1 completes.
        first = _wait_for("a hop of epoch 1 on wk2", lambda: [r for r in hop_records(store, "faulted", 1)
                                                               if r.get("peer") == WK2.ip], cli)
        killed_at = time.time()
        assert hosts.kill_host(WK2), "no process ran on wk2"
        release.touch()
        # 2. the driver dies (SIGKILL) right after its first record of epoch 2
        assert cli.wait(600) == -signal.SIGKILL, f"the run was not killed mid-epoch 2 (exit {cli.returncode})"
    finally:
        try:  # the rest of the CLI's process group: its Spark driver JVM
            os.killpg(cli.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    e1 = [r for r in hop_records(store, "faulted", 1) if r["status"] == "ok"]
    assert len(e1) == len({(r["model_id"], r.get("kind"), r["partition"]) for r in e1}) == units, e1
    assert len(first) == 1 and [r for r in e1 if r["peer"] == WK2.ip] == first, "wk2 ran more than the held hop"
    lost = first[0]["partition"]
    taken_over = [r for r in e1 if r["partition"] == lost and r["peer"] != WK2.ip]
    # every unit of the lost partition but the held one ran on wk1 (its trains and its validation links)
    assert len(taken_over) == len([r for r in e1 if r["partition"] == lost]) - 1 >= CONFIGS - 1, taken_over
    assert all(r["peer"] == WK1.ip and r["start"] > killed_at for r in taken_over), \
        "wk1 did not take over wk2's partition"
    after = [r for r in e1 if r["start"] > killed_at]
    assert {r["peer"] for r in after} == {WK1.ip} and {r["partition"] for r in after} == {0, 1}, after
    e2 = hop_records(store, "faulted", 2)
    assert len(e2) == 1 and e2[0]["peer"] == WK1.ip, e2

    # 3. wk2 comes back, and the run resumes where the records say it stopped
    spark_cluster.start_worker(WK2, tag="-restarted")
    spark_cluster.wait_registered(len(topo.WORKERS) + 1)
    out = run_cli(hosts, spark_cluster.driver_env(), "run", str(spec), "--resume", "--run-id", "faulted")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    records = hop_records(store, "faulted")
    _, _, clean_board = netns_run
    check_hop_invariants(records, sorted(clean_board), workers=topo.STUDY_WORKERS, epochs=EPOCHS)
    assert len([r for r in records if r["status"] == "ok"]) == EPOCHS * units, "a unit ran twice or not at all"
    assert e2[0] in hop_records(store, "faulted", 2), "the resume redid the recorded hop of epoch 2"
    assert_same_leaderboard(fingerprint(spec, "faulted"), clean_board)
