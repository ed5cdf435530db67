"""benchmarks/gpu_check.sh in its dry mode (CPU, tiny sizes), so that the GPU check cannot rot
between the times a GPU machine runs it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.sh"
SUMMARY = re.compile(
    r"^gpu_check summary: device cpu, mode dry \| tests: ok \(\d+s\) \| speed: ok \(\d+s, official port: skipped\)"
    r" \| workflow: ok \(\d+s\) \| total \d+s: PASSED$",
    re.MULTILINE,
)


def run(*args, timeout=300):
    env = {k: v for k, v in os.environ.items() if k != "GRU4REC_PORT"}  # the port is not in CI
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def test_the_dry_run_passes_every_step_and_ends_with_the_summary():
    r = run("--dry")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert SUMMARY.search(r.stdout), out[-2000:]
    assert "official port comparison SKIPPED" in r.stdout and "--reference-repo DIR" in r.stdout
    if not torch.cuda.is_available():
        assert re.search(r"^\d+ skipped in ", r.stdout, re.MULTILINE)  # the gpu tests, collected and skipped
    assert "[rsc15] ours:" in r.stdout and "[retailrocket] ours:" in r.stdout
    assert "synthetic/final/cross-entropy-shared/metrics.json: device cpu" in r.stdout


def test_bad_options_and_a_missing_port_checkout_stop_before_any_step(tmp_path):
    for args, message in [
        (["--bogus"], "unknown option '--bogus'"),
        (["--dry", "--device", "tpu"], "--device must be cpu, cuda or cuda:N"),
        (["--dry", "--only", "tests,foo"], "--only takes tests, speed and workflow"),
        (["--dry", "--reference-repo", str(tmp_path)], "is not a checkout of hidasib/GRU4Rec_PyTorch_Official"),
    ]:
        r = run(*args, timeout=60)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)
        assert "=== gpu_check: step" not in r.stdout
