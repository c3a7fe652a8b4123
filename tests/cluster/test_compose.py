"""docker/docker-compose.yml is checked statically (images cannot be pulled here): its services, commands,
environment and ports are those of the topology the netns and services tests run (topology.py)."""
from __future__ import annotations

import json
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from . import topology as topo

pytestmark = pytest.mark.cluster

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
# A secret in the compose file: a reference to docker/.env (made by scripts/stack_secrets.py), never a value.
SECRET_REF = re.compile(r"^\$\{([A-Z_]+):\?run make stack-up\}$")


def secret(name: str) -> str:
    return f"${{{name}:?run make stack-up}}"


def _pg_url(db: str) -> str:
    """The compose file's database URL: topology's, with the password from docker/.env."""
    return topo.postgres_url(db, topo.COMPOSE_POSTGRES, "psycopg2").replace(
        f":{topo.PG_PASSWORD}@", f":{secret('POSTGRES_PASSWORD')}@")


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
    assert conf == {**topo.SPARK_DEFAULTS, "spark.authenticate": "true", "spark.network.crypto.enabled": "true"}


def test_postgres_serves_both_databases(compose):
    pg = compose["services"][topo.COMPOSE_POSTGRES]
    env = _env(pg)
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"]) == (topo.PG_USER, secret("POSTGRES_PASSWORD"))
    assert _ports(pg) == {topo.POSTGRES_PORT}
    init = (DOCKER / "postgres-init.sql").read_text()
    for db in (topo.AIRFLOW_DB, topo.MLFLOW_DB):
        assert f"CREATE DATABASE {db} OWNER {topo.PG_USER};" in init


def test_mlflow_server_proxies_artifacts_into_the_store(compose):
    ml = compose["services"][topo.COMPOSE_MLFLOW]
    assert ml["command"] == topo.mlflow_command("0.0.0.0", _pg_url(topo.MLFLOW_DB), topo.COMPOSE_ARTIFACTS,
                                                topo.COMPOSE_MLFLOW) + ["--app-name", "basic-auth"]
    assert _ports(ml) == {topo.MLFLOW_PORT}
    assert f"store:{topo.COMPOSE_STORE}" in ml["volumes"]


def test_airflow_components_share_one_configuration(compose):
    svc = compose["services"]
    migrate = svc["airflow-init"]
    assert migrate["command"] == ["airflow", "db", "migrate"]
    secret = _env(migrate)["AIRFLOW__API_AUTH__JWT_SECRET"]
    assert secret == globals()["secret"]("AIRFLOW_JWT_SECRET")
    expected = topo.airflow_env(_pg_url(topo.AIRFLOW_DB),
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


# ------------------------------------------------------------------------------------------ no known secrets
def _strings(node):
    """Every string value in the compose file (keys aside)."""
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


def test_no_literal_secret_in_the_compose_file(compose):
    for name, svc in compose["services"].items():
        for key, value in _env(svc).items():
            if re.search(r"PASSWORD|SECRET|FERNET|TOKEN|_KEY$", key):
                assert SECRET_REF.match(value), f"{name}: {key} is a literal ({value!r}), not from docker/.env"
    for text in _strings(compose):
        for password in re.findall(r"://[^/:@\s]+:([^@\s]+)@", text):  # credentials in a URL
            assert SECRET_REF.match(password), text
        for value in re.findall(r"secret=(\$\{[^}]*\}|\S+)", text):
            assert SECRET_REF.match(value), text
    raw = (DOCKER / "docker-compose.yml").read_text()
    assert "change-me" not in raw and ":cerebro@" not in raw


def test_ports_are_published_on_loopback_only(compose):
    published = [str(p) for svc in compose["services"].values() for p in svc.get("ports", [])]
    assert published
    for p in published:
        host = p.rsplit(":", 2)[0] if p.count(":") >= 2 else "0.0.0.0"
        assert host == "${CEREBRO_PUBLISH_HOST:-127.0.0.1}", f"{p} is published on every interface"


def test_spark_authenticates_and_encrypts(compose):
    svc = compose["services"]
    for name in (topo.COMPOSE_MASTER, *topo.COMPOSE_WORKERS):
        opts = _env(svc[name])["SPARK_DAEMON_JAVA_OPTS"]
        assert opts == ("-Dspark.authenticate=true -Dspark.authenticate.secret=" + secret("SPARK_AUTH_SECRET")
                        + " -Dspark.network.crypto.enabled=true"), name
    # the applications (the scheduler's tasks): the same secret, and the conf that turns both on
    driver = _env(svc[topo.COMPOSE_DRIVER])
    assert driver["SPARK_SUBMIT_OPTS"] == f"-Dspark.authenticate.secret={secret('SPARK_AUTH_SECRET')}"
    conf = (DOCKER / "spark-conf" / "spark-defaults.conf").read_text().splitlines()
    assert "spark.authenticate true" in conf and "spark.network.crypto.enabled true" in conf


def test_mlflow_is_behind_authentication(compose):
    svc = compose["services"]
    ml = svc[topo.COMPOSE_MLFLOW]
    assert ml["command"][-2:] == ["--app-name", "basic-auth"]
    env = _env(ml)
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == secret("MLFLOW_ADMIN_PASSWORD")
    ini = DOCKER / Path(env["MLFLOW_AUTH_CONFIG_PATH"]).name
    text = ini.read_text()
    assert "admin_password" not in text and "database_uri = sqlite:////store/" in text
    assert "COPY docker/mlflow-auth.ini" in (DOCKER / "Dockerfile").read_text()
    for c in topo.AIRFLOW_COMPONENTS:  # the clients log in
        client = _env(svc[topo.compose_airflow_service(c)])
        assert client["MLFLOW_TRACKING_PASSWORD"] == secret("MLFLOW_ADMIN_PASSWORD")


def test_airflow_fernet_and_jwt_come_from_the_env_file(compose):
    for c in ["airflow-init", *(topo.compose_airflow_service(c) for c in topo.AIRFLOW_COMPONENTS)]:
        env = _env(compose["services"][c])
        assert env["AIRFLOW__CORE__FERNET_KEY"] == secret("AIRFLOW_FERNET_KEY"), c
        assert env["AIRFLOW__API_AUTH__JWT_SECRET"] == secret("AIRFLOW_JWT_SECRET"), c


def test_stack_up_makes_every_secret_the_compose_file_needs(compose, tmp_path):
    """make stack-up runs scripts/stack_secrets.py first: docker/.env with random values, mode 0600, kept."""
    from cryptography.fernet import Fernet

    env_file = tmp_path / ".env"
    script = [sys.executable, str(ROOT / "scripts" / "stack_secrets.py"), str(env_file)]
    subprocess.run(script, check=True, capture_output=True)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if not line.startswith("#"))
    needed = {m.group(1) for text in _strings(compose) for m in re.finditer(r"\$\{([A-Z_]+):\?", text)}
    assert needed == set(values)
    assert all(len(v) >= 32 for v in values.values())
    Fernet(values["AIRFLOW_FERNET_KEY"].encode())  # a valid key, or this raises
    subprocess.run(script, check=True, capture_output=True)
    again = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if not line.startswith("#"))
    assert again == values, "a second stack-up keeps the secrets"
    other = tmp_path / "other.env"
    subprocess.run([*script[:2], str(other)], check=True, capture_output=True)
    assert dict(line.split("=", 1) for line in other.read_text().splitlines() if not line.startswith("#")) != values
    makefile = (ROOT / "Makefile").read_text()
    assert "python3 scripts/stack_secrets.py docker/.env\n\tdocker compose -f docker/docker-compose.yml --env-file " \
           "docker/.env up" in makefile
    assert "docker/.env" in (ROOT / ".gitignore").read_text().splitlines()
