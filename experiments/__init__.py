"""The experiment pipeline around the model library: what the workflow's jobs run.

- `config`: the workflow config's checks (schema, names, search spaces, overrides), run when
  Snakemake parses the DAG: it imports neither torch, Optuna nor MLflow.
- `spaces`: the search spaces (the paper's, the baselines') and the fixed parameters.
- `tuning`: Optuna studies (one per dataset x loss x embedding mode), run to a trial budget,
  resumable after a kill, shared by any number of workers.
- `runs`: training and evaluating one parameter set; a tuning trial and a final run both use it.
- `tracking`: MLflow logging of studies, trials and final runs.
- `reporting`, `plots`: the result tables and plots.
- `jobs`: glue for the workflow's job scripts (logs, one-line errors, a test hook).

Installed with the `workflow` extra (`pip install -e ".[workflow]"`): Optuna, MLflow, matplotlib
and Snakemake. The model library `gru4rec` never imports this package.
"""
