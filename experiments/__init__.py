"""The experiment pipeline around the model library: what the workflow's jobs run.

- `config`: the workflow config's checks (schema, names, search spaces, overrides), run when
  Snakemake parses the DAG: it imports neither torch, Optuna nor MLflow.
- `spaces`: the search spaces (the paper's, the baselines') and the fixed parameters.
- `tuning`: Optuna studies (one per dataset x loss x embedding mode), run to a trial budget,
  resumable after a kill, shared by any number of workers.
- `runs`: training and evaluating one parameter set; a tuning trial and a final run both use it.
- `sampling`: the slot-seeded TPE sampler (a killed study draws what an uninterrupted one draws).
- `projection`: the study published into MLflow (the study is the record; MLflow its projection).
- `tracking`: the MLflow client (retries, run keys per results directory) and the final runs.
- `reporting`, `plots`: the result tables and plots; `outputs`: writing them atomically.
- `jobs`: glue for the workflow's job scripts (logs, one-line errors, a test hook);
  `processes`: whether the process that left a file behind still runs.

Installed with the `workflow` extra (`pip install -e ".[workflow]"`): Optuna, MLflow, matplotlib
and Snakemake. The model library `gru4rec` never imports this package.
"""
