"""A hostile new user's workflow configs, in dry runs: each mistake is one line `config error (FILE):
KEY: what was expected` (a did-you-mean hint for a typo), a non-zero exit, no Python traceback and
no job. The mistakes that the schema cannot see (search spaces, overrides, dataset options) are
found here too, before any preprocessing, instead of in a job."""

import copy
import subprocess
import sys

import pytest
import yaml

from .test_workflow import ENV, REPO, SNAKEMAKE, TEST_CONFIG

BASE = yaml.safe_load(TEST_CONFIG.read_text())


def dry_run(tmp_path, *args):
    """A dry run from the repository root, working in tmp_path: (exit code, every output line)."""
    r = subprocess.run(
        SNAKEMAKE + ["--directory", str(tmp_path), "-n", "--cores", "1", "all", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
        cwd=REPO,
    )
    return r.returncode, [line for line in (r.stdout + r.stderr).splitlines() if line.strip()]


def config_error(tmp_path, cfg, *args):
    """The one line of a bad config's dry run."""
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, lines = dry_run(tmp_path, "--configfile", str(path), *args)
    assert code != 0, lines
    assert not any("Traceback" in line for line in lines), lines
    assert len(lines) == 1 and lines[0].startswith(f"config error ({path}"), lines
    assert not (tmp_path / "results").exists()
    return lines[0]


def changed(*edits):
    """The CI config with edits applied: (path, value) sets a key, (path, None, new_name) renames it."""
    cfg = copy.deepcopy(BASE)
    for path, value, *rename in edits:
        *parents, last = path
        node = cfg
        for key in parents:
            node = node.setdefault(key, {})
        if rename:
            node[rename[0]] = node.pop(last)
        else:
            node[last] = value
    return cfg


SPACE = ["tuning", "space", "cross-entropy"]


# Every schema mistake of a config is reported at once (joined with '; ' on the one line), so each
# dry run below checks several; the mistakes of each group are independent of each other.
@pytest.mark.parametrize(
    "cfg,expected",
    [
        pytest.param(
            changed(
                (["tuning"], None, "tunning"),
                (["final", "seeds"], None, "sedes"),
                (["datasets", "synthetic", "options"], None, "optons"),
            ),
            [
                "top level: unknown key 'tunning' (did you mean 'tuning'?); known keys: checks, datasets, final,",
                "final: unknown key 'sedes' (did you mean 'seeds'?)",
                "datasets.synthetic: unknown key 'optons' (did you mean 'options'?)",
            ],
            id="typos",
        ),
        pytest.param(
            changed(
                (["tuning", "n_trials"], "ten"),
                (["tuning", "baseline_trials"], "10"),
                (["final", "seeds"], True),
                (["final", "device"], "gpu"),
                (["mlflow"], None),
            ),
            [
                "tuning.n_trials: expected an integer, got 'ten'",
                "tuning.baseline_trials: expected an integer, got '10' (a number in quotes is text: remove the quotes",
                "final.seeds: expected an integer, got True",
                "final.device: expected auto, cpu, cuda or cuda:N, got 'gpu'",
                "mlflow: expected a mapping (key: value), got None",
            ],
            id="types",
        ),
        pytest.param(
            changed(
                (["datasets", "synthetic", "source"], "movielens"),
                (["datasets", "synthetic", "models"], ["gru4rec", "popp"]),
                (["datasets", "synthetic", "losses"], ["mse"]),
                (["tuning", "space", "cross-entropyy"], {"layers": {"type": "int", "low": 16, "high": 32}}),
            ),
            [
                "datasets.synthetic.source: 'movielens' is not one of ['rsc15',",
                "datasets.synthetic.models.1: 'popp' is not one of ['gru4rec',",
                "(did you mean 'pop'?)",
                "datasets.synthetic.losses.0: 'mse' is not one of ['cross-entropy',",
                "tuning.space: unknown key 'cross-entropyy' (did you mean 'cross-entropy'?); expected one of",
            ],
            id="unknown-names",
        ),
        pytest.param(
            changed(
                (["tuning", "n_trials"], -5),
                (["tuning", "baseline_trials"], 0),
                (["datasets", "synthetic", "n_trials"], -1),
                (["final", "cutoffs"], [-1, 20]),
            ),
            [
                "tuning.n_trials: expected an integer >= 1, got -5",
                "tuning.baseline_trials: expected an integer >= 1, got 0",
                "datasets.synthetic.n_trials: expected an integer >= 1, got -1",
                "final.cutoffs.0: expected an integer >= 1, got -1",
            ],
            id="negative-budgets",
        ),
        pytest.param(
            {**BASE, "datasets": {"a/b": BASE["datasets"]["synthetic"], "my data": BASE["datasets"]["synthetic"]}},
            [
                "datasets: the dataset name 'a/b' may use letters, digits, '_', '.' and '-' only",
                "datasets: the dataset name 'my data' may use letters",
            ],
            id="dataset-names",
        ),
        pytest.param(
            changed((["datasets"], {})), ["datasets: is empty; expected at least one dataset"], id="no-datasets"
        ),
    ],
)
def test_schema_mistakes(tmp_path, cfg, expected):
    line = config_error(tmp_path, cfg)
    for part in expected:
        assert part in line, (part, line)


@pytest.mark.parametrize(
    "cfg,expected",
    [
        # names and bounds of the search spaces and overrides: these passed the dry run and failed in a job
        pytest.param(
            changed(
                ([*SPACE, "layres"], {"type": "int", "low": 16, "high": 32}),
                ([*SPACE, "layers"], {"type": "int", "low": 32, "high": 16}),
                ([*SPACE, "learning_rate"], {"type": "float", "low": 0.0, "high": 0.1, "log": True}),
                (["tuning", "baseline_space", "itemknn", "n_simz"], {"type": "int", "low": 20, "high": 100}),
                (["final", "overrides"], {"n_epoch": 1}),
                (["tuning", "overrides"], {"n_sampel": 1}),
            ),
            [
                "tuning.space.cross-entropy.layres: unknown parameter (did you mean 'layers'?); valid: layers,",
                "tuning.space.cross-entropy.layers: low must be <= high, got low=32, high=16",
                "tuning.space.cross-entropy.learning_rate: a log range needs low > 0",
                "tuning.baseline_space.itemknn.n_simz: unknown parameter (did you mean 'n_sims'?)",
                "final.overrides: unknown parameter 'n_epoch' (did you mean 'n_epochs'?)",
                "tuning.overrides: unknown parameter 'n_sampel' (did you mean 'n_sample'?)",
            ],
            id="names-and-bounds",
        ),
        pytest.param(
            changed((["tuning", "space", "bpr-max", "final_act"], {"type": "categorical", "choices": ["softmax"]})),
            ["tuning.space.bpr-max with tuning.overrides: final_act='softmax' cannot be used with loss='bpr-max'"],
            id="space-values",
        ),
        pytest.param(
            changed((["final", "overrides"], {"n_epochs": 0})),
            ["final.overrides: parameter n_epochs=0 is not valid: expected a value in [1, inf) (study synthetic/"],
            id="override-values",
        ),
        pytest.param(
            changed(
                (["datasets", "synthetic", "options", "n_sesions"], 10),
                (["datasets", "retail"], {"source": "retailrocket", "options": {"x": 1}}),
            ),
            [
                "datasets.synthetic.options: unknown synthetic option(s) 'n_sesions' (did you mean 'n_sessions'?)",
                "datasets.retail.options: dataset source 'retailrocket' takes no options",
            ],
            id="dataset-options",
        ),
    ],
)
def test_semantic_mistakes(tmp_path, cfg, expected):
    line = config_error(tmp_path, cfg)
    for part in expected:
        assert part in line, (part, line)


def test_mistakes_given_with_dash_dash_config(tmp_path):
    line = config_error(tmp_path, BASE, "--config", "tunning={n_trials: 3}", "final={seeds: -2}")
    assert line.startswith(f"config error ({tmp_path / 'bad.yaml'}, --config): ")
    assert "top level: unknown key 'tunning' (did you mean 'tuning'?)" in line
    assert "final.seeds: expected an integer, got '-2'" in line and "--config KEY={...}" in line


def test_the_ci_config_still_passes(tmp_path):
    code, lines = dry_run(tmp_path, "--configfile", str(TEST_CONFIG))
    assert code == 0, lines[-20:]
    assert not any("config error" in line for line in lines)


def test_parsing_the_dag_imports_neither_torch_optuna_nor_mlflow(tmp_path):
    """Every dry run and every job's start parses the DAG: it checks the config with the light
    modules only (measured on config/paper.yaml: 4.4 s and 398 MB before, 1.3 s and 148 MB after)."""
    r = subprocess.run(
        [sys.executable, "-X", "importtime", *SNAKEMAKE[1:], "--directory", str(tmp_path), "-n", "-q", "all"]
        + ["--configfile", str(REPO / "config" / "paper.yaml")],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "snakemake" in imported and "experiments.config" in imported
    assert not imported & {"torch", "optuna", "mlflow"}
