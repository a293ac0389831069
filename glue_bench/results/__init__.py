"""Results: one job's folder and the one owner of every file in it (`job_folder`), the metrics.json record
(`record`), GLUE metrics, claims on jobs, and the wandb mirror of it all (`tracking`). No torch."""
