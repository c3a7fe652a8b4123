"""A registered model as versions before raw-row models logged it: a Keras model with MLflow's tensorflow
flavor, taking the encoded tensor. cerebro-ops no longer logs such models; a champion of that kind can still
be in a registry, and the register step has to replace it."""
from __future__ import annotations


def log_tensorflow_model(tracker, child_id: str, keras_model) -> str:
    """Log `keras_model` under the child run with the tensorflow flavor; returns its ``models:/`` URI."""
    import mlflow.tensorflow

    run = tracker.client.get_run(child_id)
    # created in the run's experiment: left to itself MLflow 3 puts it in the Default experiment, whose
    # artifacts a sqlite store keeps in ./mlruns of the working directory
    logged = tracker.client.create_logged_model(experiment_id=run.info.experiment_id, name="model",
                                                source_run_id=child_id)
    with tracker.mlflow_context():
        info = mlflow.tensorflow.log_model(keras_model, name="model", run_id=child_id, model_id=logged.model_id,
                                           pip_requirements=mlflow.tensorflow.get_default_pip_requirements())
    return info.model_uri
