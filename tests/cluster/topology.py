"""The cluster topology every cluster test and docker/docker-compose.yml share: host names, addresses,
ports, the services' commands. tests/cluster/test_compose.py checks the compose file against these.

Three hosts on one private bridge (198.18.0.0/24, the benchmarking range, never routed): the driver host
runs the Spark master, PostgreSQL, MLflow and the Airflow components (it is where the CLI and the Airflow
tasks start the Spark driver and its hop server); each worker host runs one Spark worker.
"""
from __future__ import annotations

from dataclasses import dataclass

SUBNET = "198.18.0.0/24"
PREFIX = 24
BRIDGE = "cbr-cluster"          # interface names are at most 15 characters
BRIDGE_IP = "198.18.0.1"        # the operator's side of the bridge (the test process)


@dataclass(frozen=True)
class Host:
    name: str          # compose service / network namespace suffix
    ip: str
    role: str          # "driver" or "worker"

    @property
    def netns(self) -> str:
        return f"cb-{self.name}"

    @property
    def veth(self) -> str:
        return f"cbv-{self.name}"


DRIVER = Host("drv", "198.18.0.10", "driver")
WORKERS = (Host("wk1", "198.18.0.11", "worker"), Host("wk2", "198.18.0.12", "worker"))
HOSTS = (DRIVER, *WORKERS)

# Ports: the same inside every host (each namespace, like each container, has its own port space).
SPARK_MASTER_PORT = 7077
SPARK_MASTER_UI_PORT = 8081     # the Airflow api-server has 8080
POSTGRES_PORT = 5432
MLFLOW_PORT = 5000
AIRFLOW_API_PORT = 8080

# A worker host offers one core more than the study uses: when a host dies, Spark can put the lost task on
# the surviving host (the study's W tasks need W slots at once; spark.cores.max keeps it at W).
WORKER_CORES = 2
STUDY_WORKERS = 2
SPARK_DEFAULTS = {"spark.cores.max": str(STUDY_WORKERS), "spark.executor.cores": "1"}

# PostgreSQL: one server, one database per service.
PG_USER = "cerebro"
PG_PASSWORD = "cerebro"
AIRFLOW_DB = "airflow"
MLFLOW_DB = "mlflow"

# Airflow 3 components, one process (or container) each, LocalExecutor.
AIRFLOW_EXECUTOR = "cerebro_ops.airflow.executor.WarmLocalExecutor"  # LocalExecutor, task processes pre-warmed
AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


def spark_master_url(host: str = DRIVER.ip) -> str:
    return f"spark://{host}:{SPARK_MASTER_PORT}"


def postgres_url(db: str, host: str = DRIVER.ip, driver: str = "") -> str:
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    return f"{scheme}://{PG_USER}:{PG_PASSWORD}@{host}:{POSTGRES_PORT}/{db}"


def mlflow_url(host: str = DRIVER.ip) -> str:
    return f"http://{host}:{MLFLOW_PORT}"


def airflow_api_url(host: str = DRIVER.ip) -> str:
    return f"http://{host}:{AIRFLOW_API_PORT}"


def master_command(host: str) -> list[str]:
    return ["spark-class", "org.apache.spark.deploy.master.Master", "--host", host,
            "--port", str(SPARK_MASTER_PORT), "--webui-port", str(SPARK_MASTER_UI_PORT)]


def worker_command(host: str, master_host: str = DRIVER.ip) -> list[str]:
    return ["spark-class", "org.apache.spark.deploy.worker.Worker", spark_master_url(master_host),
            "--host", host, "--cores", str(WORKER_CORES)]


def mlflow_command(host: str, backend: str, artifacts: str, served_as: str) -> list[str]:
    """`served_as`: the name clients use (the Host header); MLflow accepts only localhost and RFC 1918
    addresses unless told (DNS-rebinding protection), and 198.18.0.0/15 or a service name is neither."""
    return ["mlflow", "server", "--backend-store-uri", backend, "--serve-artifacts",
            "--artifacts-destination", artifacts, "--host", host, "--port", str(MLFLOW_PORT),
            "--allowed-hosts", f"{served_as}:{MLFLOW_PORT}"]


def airflow_command(component: str) -> list[str]:
    if component == "api-server":
        return ["airflow", "api-server", "--port", str(AIRFLOW_API_PORT)]
    return ["airflow", component]


def airflow_env(sql_conn: str, api_host: str, spark_master: str, tracking_uri: str, jwt_secret: str) -> dict[str, str]:
    """What every Airflow component needs (the same in the tests and in the compose file); the JWT secret
    must be the same in all of them (the api-server signs the tasks' tokens, the others present them)."""
    return {
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__CORE__EXECUTOR": AIRFLOW_EXECUTOR,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_conn,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://{api_host}:{AIRFLOW_API_PORT}/execution/",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_SPARK_DEFAULT": ('{"conn_type": "spark", "host": "spark://%s", "port": %d}'
                                      % (spark_master.split("://", 1)[1].rsplit(":", 1)[0], SPARK_MASTER_PORT)),
        "MLFLOW_TRACKING_URI": tracking_uri,
    }


# docker/docker-compose.yml: the same roles as containers; a service's name is its host name there.
COMPOSE_MASTER = "spark-master"
COMPOSE_WORKERS = ("spark-worker-1", "spark-worker-2")   # at WORKERS[i].ip
COMPOSE_DRIVER = "airflow-scheduler"                     # at DRIVER.ip: its LocalExecutor tasks run the Spark driver
COMPOSE_POSTGRES = "postgres"
COMPOSE_MLFLOW = "mlflow"
COMPOSE_STORE = "/store"                                 # the shared store volume
COMPOSE_ARTIFACTS = "/store/mlflow-artifacts"


def compose_airflow_service(component: str) -> str:
    return f"airflow-{component}"
