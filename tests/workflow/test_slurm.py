"""profiles/slurm: checked by a dry run always, and run for real on a one-node SLURM cluster that the
test starts on this machine (tests/servers.py; Debian's slurm-wlm, which `.ci/run` installs)."""

import subprocess

import pandas as pd
import pytest

from ..servers import slurm_cluster
from .test_workflow import ENV, REPO, SNAKEMAKE, dry_run, job_counts, tiny_config

PROFILE = ["--profile", str(REPO / "profiles" / "slurm")]
# no accounting database on the test cluster: no account to check, job states from squeue; its
# short jobs are asked for their state after 5 s, not 40; and the log of every SLURM job is kept
# (the plugin deletes those of successful jobs): the test reads them
TEST_CLUSTER = [
    "--slurm-no-account",
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "5",
    "--slurm-keep-successful-logs",
]


def one_study_config(tmp_path):
    # one study and its final run: the point is that every job goes through SLURM
    return tiny_config(
        tmp_path,
        datasets={
            "synthetic": {
                "source": "synthetic",
                "losses": ["cross-entropy"],
                "embeddings": ["shared"],
                "options": {"n_sessions": 1500, "n_items": 150, "days": 10, "seed": 3},
            }
        },
    )


def test_the_slurm_profile_is_a_valid_profile(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="pip install snakemake-executor-plugin-slurm")
    jobs = job_counts(dry_run(tmp_path, *PROFILE, "--configfile", str(one_study_config(tmp_path))))
    assert jobs["tune"] == 1 and jobs["train_final"] == 1


@pytest.mark.slow
def test_the_workflow_runs_through_slurm_with_the_profile(tmp_path):
    config = one_study_config(tmp_path)
    with slurm_cluster() as slurm_env:
        r = subprocess.run(
            SNAKEMAKE + ["--directory", str(tmp_path), *PROFILE, *TEST_CLUSTER, "all", "--configfile", str(config)],
            capture_output=True,
            text=True,
            timeout=1200,
            env=dict(ENV, SLURM_CONF=slurm_env["SLURM_CONF"]),
        )
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    summary = pd.read_csv(tmp_path / "results" / "tables" / "summary.csv")
    assert (summary.loss == "cross-entropy").any()
    # the work ran as SLURM jobs (the plugin keeps a log per job)
    slurm_logs = tmp_path / ".snakemake" / "slurm_logs"
    for rule in ("preprocess", "tune", "train_final"):
        assert list((slurm_logs / f"rule_{rule}").rglob("*.log")), f"no SLURM job of rule {rule}"
