"""What the Airflow UI plugin (plugins/cerebro_plugin.py) shows, computed from the store: studies, runs,
leaderboards, learning curves and the MOP Gantt chart. Read-only; no Airflow, Spark or TensorFlow here, so
the pages can be rendered and tested without a server."""
