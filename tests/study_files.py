"""What test harnesses read from a finished study run: its store folder and its state, through the run
repository (the only reader of state.json). Mixed into the harnesses' run records, which have `spec` and
`run_id` fields."""
from __future__ import annotations


class RunFiles:
    spec: object
    run_id: str

    @property
    def store(self):
        from cerebro_ops import study
        return study.repository(self.spec, self.run_id).store

    @property
    def state(self) -> dict:
        from cerebro_ops import study
        return study.load_state(self.spec, self.run_id)

    def mlflow_runs(self):
        return mlflow_runs(self.spec.runtime.tracking_uri, self.state)


def mlflow_runs(tracking_uri: str, state: dict):
    """(parent run, child runs in model id order) of a study run: the MLflow runs its state records."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    ids = state.get("mlflow") or {}
    parent = client.get_run(ids["parent"]) if ids.get("parent") else None
    return parent, [client.get_run(r) for _, r in sorted((ids.get("children") or {}).items())]
