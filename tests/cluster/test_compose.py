"""docker/docker-compose.yml is checked statically (images cannot be pulled here): its services, commands,
environment and ports are those of the topology the netns and services tests run (topology.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from . import topology as topo

pytestmark = pytest.mark.cluster

DOCKER = Path(__file__).resolve().parents[2] / "docker"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _ports(service: dict) -> set[int]:
    return {int(str(p).split(":")[-1]) for p in service.get("ports", [])}


def _ip(service: dict) -> str | None:
    return ((service.get("networks") or {}).get("default") or {}).get("ipv4_address")


def test_every_role_is_a_service(compose):
    services = set(compose["services"])
    expected = {topo.COMPOSE_POSTGRES, topo.COMPOSE_MASTER, *topo.COMPOSE_WORKERS, topo.COMPOSE_MLFLOW,
                "airflow-init", *(topo.compose_airflow_service(c) for c in topo.AIRFLOW_COMPONENTS)}
    assert services == expected


def test_network_is_the_hosts_subnet(compose):
    ipam = compose["networks"]["default"]["ipam"]["config"][0]
    assert ipam["subnet"] == topo.SUBNET
    svc = compose["services"]
    assert [_ip(svc[w]) for w in topo.COMPOSE_WORKERS] == [w.ip for w in topo.WORKERS]
    assert _ip(svc[topo.COMPOSE_DRIVER]) == topo.DRIVER.ip
    # the dynamic pool cannot hand a fixed address to another container
    assert ipam["ip_range"] == "198.18.0.128/25"


def test_spark_master_and_workers(compose):
    svc = compose["services"]
    master = svc[topo.COMPOSE_MASTER]
    assert master["command"] == topo.master_command(topo.COMPOSE_MASTER)
    assert _ports(master) == {topo.SPARK_MASTER_PORT, topo.SPARK_MASTER_UI_PORT}
    for name, host in zip(topo.COMPOSE_WORKERS, topo.WORKERS):
        w = svc[name]
        assert w["command"] == topo.worker_command(name, topo.COMPOSE_MASTER)
        assert _env(w)["SPARK_LOCAL_IP"] == host.ip
        assert f"store:{topo.COMPOSE_STORE}" in w["volumes"]
    conf = dict(line.split(None, 1) for line in (DOCKER / "spark-conf" / "spark-defaults.conf").read_text().splitlines()
                if line.strip())
    assert conf == topo.SPARK_DEFAULTS


def test_postgres_serves_both_databases(compose):
    pg = compose["services"][topo.COMPOSE_POSTGRES]
    env = _env(pg)
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == (topo.PG_USER, topo.PG_PASSWORD)
    assert _ports(pg) == {topo.POSTGRES_PORT}
    init = (DOCKER / "postgres-init.sql").read_text()
    for db in (topo.AIRFLOW_DB, topo.MLFLOW_DB):
        assert f"CREATE DATABASE {db} OWNER {topo.PG_USER};" in init


def test_mlflow_server_proxies_artifacts_into_the_store(compose):
    ml = compose["services"][topo.COMPOSE_MLFLOW]
    assert ml["command"] == topo.mlflow_command("0.0.0.0", topo.postgres_url(topo.MLFLOW_DB, topo.COMPOSE_POSTGRES, "psycopg2"),
                                                topo.COMPOSE_ARTIFACTS, topo.COMPOSE_MLFLOW)
    assert _ports(ml) == {topo.MLFLOW_PORT}
    assert f"store:{topo.COMPOSE_STORE}" in ml["volumes"]


def test_airflow_components_share_one_configuration(compose):
    svc = compose["services"]
    migrate = svc["airflow-init"]
    assert migrate["command"] == ["airflow", "db", "migrate"]
    secret = _env(migrate)["AIRFLOW__API_AUTH__JWT_SECRET"]
    expected = topo.airflow_env(topo.postgres_url(topo.AIRFLOW_DB, topo.COMPOSE_POSTGRES, driver="psycopg2"),
                                topo.compose_airflow_service("api-server"), topo.spark_master_url(topo.COMPOSE_MASTER),
                                topo.mlflow_url(topo.COMPOSE_MLFLOW), secret)
    spark_conn = json.loads(expected.pop("AIRFLOW_CONN_SPARK_DEFAULT"))
    for name in ["airflow-init", *(topo.compose_airflow_service(c) for c in topo.AIRFLOW_COMPONENTS)]:
        env = _env(svc[name])
        assert {k: env.get(k) for k in expected} == expected, name
        assert json.loads(env["AIRFLOW_CONN_SPARK_DEFAULT"]) == spark_conn, name
    for c in topo.AIRFLOW_COMPONENTS:
        s = svc[topo.compose_airflow_service(c)]
        assert s["command"] == topo.airflow_command(c)
        assert s["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert _ports(svc[topo.compose_airflow_service("api-server")]) == {topo.AIRFLOW_API_PORT}


def test_spark_driver_is_reachable_from_the_workers(compose):
    driver = compose["services"][topo.COMPOSE_DRIVER]
    env = _env(driver)
    assert env["SPARK_LOCAL_IP"] == env["CEREBRO_DRIVER_HOST"] == _ip(driver) == topo.DRIVER.ip
    assert f"store:{topo.COMPOSE_STORE}" in driver["volumes"]
    assert Path(env["SPARK_CONF_DIR"]).name == "spark-conf"
