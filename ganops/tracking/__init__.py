"""MLflow: the runs every stage logs to (``runs``), the model registry with its champion decision
(``registry``), and the checks that gate a promotion and the Dagster asset checks (``checks``)."""
