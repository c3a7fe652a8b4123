"""cerebro-ops: deep-learning model selection with Model Hopper Parallelism on Airflow + Spark + MLflow."""
__version__ = "0.1.0"
