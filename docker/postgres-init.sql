-- One PostgreSQL server, one database per service (the cerebro role is created from POSTGRES_USER).
CREATE DATABASE airflow OWNER cerebro;
CREATE DATABASE mlflow OWNER cerebro;
