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
from .conftest import PY, REPO, assert_same_leaderboard, fingerprint, hop_records, run_cli, study_spec

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
    spec = study_spec(tmp / "spec.yaml", dummy_data, store, spark_cluster.master, f"sqlite:///{tmp / 'mlflow.db'}")
    cli = hosts.spawn(topo.DRIVER, [PY, "-m", "cerebro_ops.cli", "run", str(spec), "--run-id", "faulted"],
                      "cli-faulted", env=spark_cluster.driver_env(), cwd=REPO)
    try:
        # 1. worker host wk2 loses power after its first hop of epoch 1: its Spark worker JVM, executor and
        #    Python workers die; Spark reruns the lost task on wk1's spare core and epoch 1 completes.
        _wait_for("a hop of epoch 1 on wk2", lambda: [r for r in hop_records(store, "faulted", 1)
                                                       if r.get("peer") == WK2.ip], cli)
        killed_at = time.time()
        assert hosts.kill_host(WK2), "no process ran on wk2"
        e2 = _wait_for("epoch 2 to start on the surviving host",
                       lambda: [r for r in hop_records(store, "faulted", 2) if r.get("status") == "ok"], cli)
        # 2. the driver dies mid-epoch 2 (the CLI and its Spark driver JVM: one process group)
        os.killpg(cli.pid, signal.SIGKILL)
        cli.wait(30)
    finally:
        if cli.poll() is None:
            os.killpg(cli.pid, signal.SIGKILL)
    e1 = hop_records(store, "faulted", 1)
    after = [r for r in e1 if r["status"] == "ok" and r["start"] > killed_at]
    assert after and {r["peer"] for r in after} == {WK1.ip}, "epoch 1 was not finished by wk1 after wk2 died"
    assert {r["partition"] for r in after} == {0, 1}, "wk1 did not take over wk2's partition"
    assert all(r["peer"] == WK1.ip for r in e2)
    done_before_resume = len(hop_records(store, "faulted", 2))

    # 3. wk2 comes back, and the run resumes where the records say it stopped
    spark_cluster.start_worker(WK2, tag="-restarted")
    spark_cluster.wait_registered(len(topo.WORKERS) + 1)
    out = run_cli(hosts, spark_cluster.driver_env(), "run", str(spec), "--resume", "--run-id", "faulted")
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    e2_all = [r for r in hop_records(store, "faulted", 2) if r["status"] == "ok"]
    assert len(e2_all) > done_before_resume >= 1
    _, _, clean_board = netns_run
    assert_same_leaderboard(fingerprint(spec, "faulted"), clean_board)
