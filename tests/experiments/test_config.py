"""experiments.config: the workflow config's check as a module, without Snakemake's DAG around it.
(tests/workflow/test_config_errors.py drives the same checks through real dry runs.)"""

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments.config import ConfigError, check_config

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
PUBLISHED = yaml.safe_load((REPO / "config" / "published.yaml").read_text())
DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def check(config):
    config = copy.deepcopy(config)
    check_config(config, SCHEMA, PUBLISHED)
    return config


def test_the_shipped_configs_pass_and_get_their_defaults():
    demo = check(DEMO)
    ds = next(iter(demo["datasets"].values()))
    assert ds["mode"] == demo["mode"] and "gru4rec" in ds["models"] and "vsknn" in ds["models"]
    assert demo["mlflow"]["tracking_uri"] == f"sqlite:///{demo['results_dir'].rstrip('/')}/mlflow.db"
    paper = check(yaml.safe_load((REPO / "config" / "paper.yaml").read_text()))
    assert {ds["source"] for ds in paper["datasets"].values()} >= {"rsc15", "retailrocket"}


def error(config) -> str:
    with pytest.raises(ConfigError) as e:
        check(config)
    message = str(e.value)
    assert "\n" not in message
    return message


def with_(path, value):
    config = copy.deepcopy(DEMO)
    *parents, last = path
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


def test_a_typo_names_the_key_and_the_closest_one():
    config = copy.deepcopy(DEMO)
    config["tunning"] = config.pop("tuning")
    assert "unknown key 'tunning' (did you mean 'tuning'?)" in error(config)


def test_a_wrong_type_names_the_key_and_what_was_expected():
    message = error(with_(["final", "seeds"], "3"))
    assert message.startswith("final.seeds: expected an integer, got '3'") and "remove the quotes" in message


def test_reproduce_needs_a_published_parameter_set():
    name = next(iter(DEMO["datasets"]))
    config = with_(["datasets", name], {"source": "rsc15", "mode": "reproduce"})
    assert error(config).startswith(f"datasets.{name}: mode 'reproduce' needs 'paper' set to one of")


def test_a_search_space_is_checked_as_the_jobs_will_check_it():
    config = with_(["tuning", "baseline_space"], {"sknn": {"kk": {"type": "int", "low": 1, "high": 5}}})
    assert error(config).startswith("tuning.baseline_space.sknn.kk: unknown parameter (did you mean 'k'?)")
    cubic = {"type": "categorical", "choices": ["cubic"]}
    config = with_(["tuning", "baseline_space"], {"vsknn": {"weighting": cubic}})
    assert "tuning.baseline_space.vsknn: parameter weighting='cubic' of baseline V-SkNN is not valid" in error(config)


def test_sampled_negative_evaluation_is_refused_with_the_reason():
    name = next(iter(DEMO["datasets"]))
    for path in (["datasets", name, "eval_negatives"], ["final", "n_negatives"]):
        message = error(with_(path, 100))
        assert message.startswith(f"{'.'.join(path)}: sampled-negative evaluation is refused: ")
        assert "inflates the metrics and can reverse which model wins" in message and "against every item" in message
    check(with_(["tuning", "overrides", "n_sample"], 64))  # the training's negative sampling stays allowed


def test_the_checks_and_the_training_window():
    assert check(DEMO)["checks"] == {"strict": False, "tolerance": 0.01}
    name = next(iter(DEMO["datasets"]))
    assert check(with_(["datasets", name, "train_window_days"], 14))["datasets"][name]["train_window_days"] == 14
    message = error(with_(["datasets", name, "train_window_days"], 0))
    assert message.startswith(f"datasets.{name}.train_window_days: expected a number > 0, got 0")
    assert error(with_(["checks", "tolerance"], -0.1)).startswith("checks.tolerance: expected a number >= 0")
    last = {
        "source": "custom",
        "train_window_days": 7,
        "options": {"files": "a.csv", "columns": {"session": "s", "item": "i", "time": "t"}, "split": {"mode": "last"}},
    }
    message = error(with_(["datasets", "seq"], last))
    assert message.startswith("datasets.seq.train_window_days: ") and "needs a time split" in message


def test_checking_a_config_loads_neither_torch_optuna_nor_mlflow():
    """Snakemake runs the check whenever it parses the DAG (every dry run, every job's start)."""
    code = (
        "import sys, yaml; from experiments.config import check_config\n"
        f"c = yaml.safe_load(open({str(REPO / 'config' / 'paper.yaml')!r}))\n"
        f"check_config(c, {str(SCHEMA)!r}, yaml.safe_load(open({str(REPO / 'config' / 'published.yaml')!r})))\n"
        "print([m for m in ('torch', 'optuna', 'mlflow') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_a_bad_published_statistic_stops_the_config_check_naming_it():
    published = copy.deepcopy(PUBLISHED)
    published["statistics"]["rsc15"]["train_full"]["events"] = "31.6M"
    config = {"datasets": {"r": {"source": "rsc15"}, "s": {"source": "synthetic"}}}
    with pytest.raises(ConfigError) as e:
        check_config(copy.deepcopy(config), SCHEMA, published)
    assert str(e.value) == (
        "config/published.yaml: statistics.rsc15.train_full.events: '31.6M' is not a published figure "
        "(expected a positive integer, e.g. 31637239, or null where no source gives it)"
    )
    published["statistics"]["rsc15"]["train_full"]["events"] = 0
    with pytest.raises(ConfigError, match=r"statistics.rsc15.train_full.events: 0 is not a published figure"):
        check_config(copy.deepcopy(config), SCHEMA, published)
    check_config(copy.deepcopy(config), SCHEMA, PUBLISHED)  # the shipped figures pass
