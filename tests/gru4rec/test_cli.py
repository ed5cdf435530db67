"""The gru4rec command end to end, and its error handling (one line, exit code 2, no traceback)."""

import contextlib
import io
import re
import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pandas as pd
import pytest

from gru4rec import GRU4Rec, recommend
from gru4rec.cli import main
from tests.conftest import markov_sessions

FAST = "layers=24,n_epochs=2,batch_size=16,n_sample=16,sample_store_size=10000"
METRIC_LINE = re.compile(r"^Recall@(\d+): (\d\.\d{6}) MRR@(\d+): (\d\.\d{6})$", re.M)
# the second line of each cut-off: the other metrics (popularity when the model knows item support)
MORE_LINE = re.compile(r"^NDCG@(\d+): (\d\.\d{6}) Coverage@\1: (\d\.\d{6})( Popularity@\1: (\d\.\d{6}))?$", re.M)
N_UNKNOWN = 3  # test events whose item the model has never seen


def run(*args):
    """main() in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Train once through the CLI: (directory, stdout of the training run)."""
    d = tmp_path_factory.mktemp("cli")
    df = markov_sessions(n_sessions=400, n_items=40, seed=1)
    df[df.SessionId < 350].to_csv(d / "train.tsv", sep="\t", index=False)
    test = df[df.SessionId >= 350].reset_index(drop=True)
    test.loc[[1, 5, 9], "ItemId"] = [1001, 1002, 1003]  # unknown to the model
    test.to_parquet(d / "test.parquet")
    code, out, err = run(
        "train",
        d / "train.tsv",
        "-ps",
        FAST,
        "-t",
        d / "test.parquet",
        "-m",
        1,
        5,
        20,
        "-s",
        d / "model.safetensors",
        "-d",
        "cpu",
        "--seed",
        7,
    )
    assert code == 0, err
    return d, out


def metrics(out):
    return {int(n): (r, m) for n, r, n2, m in METRIC_LINE.findall(out) if n == n2}


def test_train_output_and_model_file(trained):
    d, out = trained
    assert (d / "model.safetensors").is_file()
    assert re.search(
        r"^Parameters: layers=24,loss=cross-entropy,final_act=softmax,batch_size=16,.* \(seed 7, "
        r"device cpu\)$",
        out,
        re.M,
    )
    epochs = re.findall(r"^Epoch(\d) --> loss: [\d.]+ \([\d.]+s\) \[[\d.]+ mb/s \| \d+ e/s\]$", out, re.M)
    assert epochs == ["1", "2"]
    report = out[out.index("Evaluating on") :].splitlines()
    assert re.fullmatch(rf"Evaluating on {re.escape(str(d / 'test.parquet'))}: \d+ events, 50 sessions .*", report[0])
    assert report[1] == f"Dropped {N_UNKNOWN} test event(s) whose item is unknown to the model"
    assert re.fullmatch(r"Evaluation took [\d.]+s \(\d+ predictions\)", report[2])
    assert [int(METRIC_LINE.fullmatch(line).group(1)) for line in report[3:9:2]] == [1, 5, 20]
    more = [MORE_LINE.fullmatch(line) for line in report[4:10:2]]
    assert [int(m.group(1)) for m in more] == [1, 5, 20] and all(m.group(4) for m in more)
    ndcg = [float(m.group(2)) for m in more]
    assert ndcg[0] == float(metrics(out)[1][0]) and ndcg[0] <= ndcg[1] <= ndcg[2]  # NDCG@1 = Recall@1
    r1, r5, r20 = (float(metrics(out)[n][0]) for n in (1, 5, 20))
    assert r1 <= r5 <= r20 and r20 > 0.3  # the sessions follow a Markov chain: a trained model finds it
    assert re.fullmatch(r"Done in [\d.]+s", report[-1])


def test_evaluate_reproduces_the_training_figures(trained):
    d, out = trained
    code, again, err = run("evaluate", d / "model.safetensors", "-t", d / "test.parquet", "-m", 20, 5, 1, "-d", "cpu")
    assert code == 0, err
    assert metrics(again) == metrics(out)
    code, cons, err = run(
        "evaluate",
        d / "model.safetensors",
        "-t",
        d / "test.parquet",
        d / "train.tsv",
        "-e",
        "conservative",
        "-d",
        "cpu",
    )
    assert code == 0, err
    assert cons.count("Evaluating on ") == 2 and len(METRIC_LINE.findall(cons)) == 2
    assert len(MORE_LINE.findall(cons)) == 2
    assert "Dropped 0 test event(s)" in cons


def test_recommend_one_session_from_the_command_line(trained):
    d, _ = trained
    code, out, err = run("recommend", d / "model.safetensors", "--items", 3, 7, 999999, "x", "-k", 5, "-d", "cpu")
    assert code == 0, err
    assert "skipped 2 of 4 input item(s)" in err
    got = pd.read_csv(io.StringIO(out), sep="\t")
    assert list(got.columns) == ["SessionId", "Rank", "ItemId", "Score"]
    assert got.Rank.tolist() == [1, 2, 3, 4, 5] and got.Score.is_monotonic_decreasing
    model = GRU4Rec.load(d / "model.safetensors", device="cpu")
    (expected,), _ = recommend(model, [[3, 7]], k=5)
    assert got.ItemId.tolist() == [item for item, _ in expected]
    assert np.allclose(got.Score, [score for _, score in expected], rtol=1e-5)


def test_recommend_sessions_file_to_output(trained):
    d, _ = trained
    out_file = d / "recs.tsv"
    code, out, err = run(
        "recommend", d / "model.safetensors", "--sessions", d / "test.parquet", "-k", 3, "-o", out_file, "-d", "cpu"
    )
    assert code == 0, err
    assert out == "" and f"skipped {N_UNKNOWN} of" in err
    got = pd.read_csv(out_file, sep="\t")
    test = pd.read_parquet(d / "test.parquet")
    assert got.SessionId.unique().tolist() == test.SessionId.unique().tolist()
    assert (
        got.groupby("SessionId").Rank.apply(list)
        == pd.Series([[1, 2, 3]] * test.SessionId.nunique(), index=test.SessionId.unique())
    ).all()
    # the list of a session is the one for its events in time order, whatever the file's row order
    last = test.SessionId.iloc[-1]
    items = test[test.SessionId == last].sort_values("Time").ItemId.tolist()
    _, direct, _ = run("recommend", d / "model.safetensors", "--items", *items, "-k", 3, "-d", "cpu")
    assert pd.read_csv(io.StringIO(direct), sep="\t").ItemId.tolist() == got[got.SessionId == last].ItemId.tolist()
    assert sorted(p.name for p in d.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_string_ids_custom_columns_and_yaml_parameters(tmp_path):
    # one id with a leading zero keeps the whole column text: the model's ids are str '0'..'14', '007'
    df = markov_sessions(n_sessions=120, n_items=15, seed=3)
    df = pd.DataFrame({"sess": "s" + df.SessionId.astype(str), "product": df.ItemId.astype(str), "ts": df.Time})
    df.loc[0, "product"] = "007"
    df.to_csv(tmp_path / "train.csv", index=False)
    (tmp_path / "p.yaml").write_text(
        "loss: bpr-max\nelu_param: 0.5\nlayers: [8]\nn_epochs: 1\nn_sample: 4\nsample_store_size: 1000\nbatch_size: 8\n"
    )
    cols = ["-sk", "sess", "-ik", "product", "-tk", "ts", "-d", "cpu"]
    code, out, err = run(
        "train",
        tmp_path / "train.csv",
        "-pf",
        tmp_path / "p.yaml",
        "-s",
        tmp_path / "m",
        "-t",
        tmp_path / "train.csv",
        *cols,
    )
    assert code == 0, err
    assert "final_act=elu-0.5" in out and "Recall@20: " in out
    assert GRU4Rec.load(tmp_path / "m", device="cpu").item_ids.dtype == object
    code, out, err = run("recommend", tmp_path / "m", "--items", "007", "3", "-k", 4, "-d", "cpu")
    assert code == 0 and "skipped" not in err, err
    assert len(pd.read_csv(io.StringIO(out), sep="\t")) == 4
    # a sessions file whose ids all look like integers is read as int64; they still match the text ids
    pd.DataFrame({"sess": [1, 1, 2], "product": [3, 4, 99], "ts": [1, 2, 3]}).to_csv(tmp_path / "s.csv", index=False)
    code, out, err = run("recommend", tmp_path / "m", "--sessions", tmp_path / "s.csv", "-k", 2, *cols)
    assert code == 0 and "skipped 1 of 3 input item(s)" in err and "1 of 2 session(s) had no known item" in err
    got = pd.read_csv(io.StringIO(out), sep="\t")
    assert got.SessionId.tolist() == [1, 1] and got.Rank.tolist() == [1, 2]


def test_reference_parameter_file(trained, tmp_path):
    d, _ = trained
    pf = tmp_path / "p.py"
    pf.write_text(
        "from collections import OrderedDict\ngru4rec_params = OrderedDict([('loss', 'bpr-max'), "
        "('elu_param', 0.5), ('layers', [16]), ('n_epochs', 1), ('batch_size', 16), ('n_sample', 8), "
        "('sample_store_size', 1000)])\n"
    )
    code, out, err = run("train", d / "train.tsv", "-pf", pf, "-d", "cpu", "-q")
    assert code == 0, err
    assert "loss=bpr-max,final_act=elu-0.5" in out and "Epoch1" not in out  # -q: no epoch lines


def test_diverged_training_exits_1_and_saves_nothing(trained, tmp_path):
    d, _ = trained
    # 1e38, next to float32's largest: Adagrad steps that large make weights whose products overflow (inf,
    # then nan); with 1e30 the saturated network stayed finite or not depending on library versions
    code, out, err = run(
        "train", d / "train.tsv", "-ps", FAST + ",learning_rate=1e38", "-s", tmp_path / "m", "-d", "cpu"
    )
    assert code == 1
    assert err.startswith("gru4rec: error: the loss became nan") and err.count("\n") == 1
    assert not (tmp_path / "m").exists() and list(tmp_path.iterdir()) == []


CONTENTS = {
    "empty": "",
    "header": "SessionId\tItemId\tTime\n",
    "nocol": "SessionId\tItem\tTime\n1\t2\t3\n",
    "commas": "SessionId,ItemId,Time\n1,2,3\n",
    "badtime": "SessionId\tItemId\tTime\n1\t2\tnoon\n1\t3\t4\n",
    "nanid": "SessionId\tItemId\tTime\n1\t\t3\n1\t3\t4\n",
    "ok": "SessionId\tItemId\tTime\n1\t2\t3\n1\t3\t4\n2\t2\t5\n2\t3\t6\n",
}


@pytest.mark.parametrize(
    "make,args,match",
    [
        (None, ["train", "{d}/missing.tsv", "-ps", FAST], "{d}/missing.tsv: file not found"),
        (None, ["train", "{d}", "-ps", FAST], "{d}: is a directory"),
        ("empty", ["train", "{f}", "-ps", FAST], "{f}: the file is empty"),
        ("header", ["train", "{f}", "-ps", FAST], "{f}: no events"),
        (
            "nocol",
            ["train", "{f}", "-ps", FAST],
            r"{f}: missing column\(s\) ItemId; the file has: SessionId, Item, Time",
        ),
        ("commas", ["train", "{f}", "-ps", FAST], "the file has: SessionId,ItemId,Time"),
        ("badtime", ["train", "{f}", "-ps", FAST], r"{f}: column Time must be numeric; 1 value\(s\) .*'noon'"),
        (
            "nanid",
            ["train", "{f}", "-ps", FAST],
            r"{f}: column ItemId has 1 missing value\(s\) \(first at data row 1\)",
        ),
        ("ok", ["train", "{f}", "-ps", "layrs=10"], "unknown parameter 'layrs' \\(did you mean 'layers'\\?\\); valid"),
        ("ok", ["train", "{f}", "-ps", "batch_size=-1"], r"batch_size=-1 is not valid: expected a value in \[1, inf\)"),
        ("ok", ["train", "{f}", "-ps", "layers"], "malformed parameter 'layers'"),
        (
            "ok",
            ["train", "{f}", "-ps", "loss=bpr-max,final_act=softmax"],
            "final_act='softmax' cannot be used with loss='bpr-max'; valid final_act for bpr-max: linear, relu",
        ),
        ("ok", ["train", "{f}", "-pf", "{d}/nope.py"], "{d}/nope.py: parameter file not found"),
        ("ok", ["train", "{f}", "-ps", FAST, "-pf", "{d}/p.py"], "argument -pf/--parameter-file: not allowed with"),
        ("ok", ["train", "{f}", "-ps", FAST, "-t", "{d}/nope.tsv"], "{d}/nope.tsv: file not found"),
        ("ok", ["train", "{f}", "-ps", FAST, "-s", "{d}/no/dir/m.safetensors"], "directory {d}/no/dir does not exist"),
        ("ok", ["train", "{f}", "-ps", FAST, "-d", "tpu"], "device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("ok", ["train", "{f}", "-m", "0"], "argument -m/--measure: expected a positive integer, got '0'"),
        ("ok", ["train", "{f}", "-e", "optimistic"], "argument -e/--eval-type: invalid choice: 'optimistic'"),
        ("ok", ["evaluate", "{f}", "-t", "{f}"], "{f} is not a GRU4Rec model file"),
        ("ok", ["evaluate", "{d}/none.safetensors", "-t", "{f}"], "{d}/none.safetensors: model file not found"),
        ("ok", ["evaluate", "{d}/none.safetensors"], "the following arguments are required: -t/--test"),
        ("ok", ["recommend", "{f}"], "one of the arguments --items --sessions is required"),
        ("ok", ["recommend", "{f}", "--items", "1", "-o", "{d}"], "{d}: is a directory, expected a file path for -o"),
        ("ok", ["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, make, args, match):
    f = tmp_path / "in.tsv"
    if make:
        f.write_text(CONTENTS[make])
    argv = [a.format(d=tmp_path, f=f) for a in args]
    code, out, err = run(*argv)
    assert code == 2, (out, err)
    assert err.startswith("gru4rec: error: ") and err.count("\n") == 1, err
    assert re.search(match.format(d=re.escape(str(tmp_path)), f=re.escape(str(f))), err), err
    assert "Epoch1" not in out  # every mistake is found before any training


def test_python_dash_m_and_console_script(trained, tmp_path):
    d, out = trained
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "gru4rec",
            "evaluate",
            str(d / "model.safetensors"),
            "-t",
            str(d / "test.parquet"),
            "-m",
            "1",
            "5",
            "20",
            "-d",
            "cpu",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert metrics(r.stdout) == metrics(out)
    (tmp_path / "bad.tsv").write_text(CONTENTS["badtime"])
    r = subprocess.run(
        [sys.executable, "-m", "gru4rec", "train", str(tmp_path / "bad.tsv"), "-d", "cpu"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1, r.stderr
    (script,) = entry_points(group="console_scripts", name="gru4rec")
    assert script.load() is main


def test_help_lists_commands_and_parameters():
    code, out, _ = run("-h")
    assert code == 0 and all(c in out for c in ("train", "evaluate", "recommend"))
    code, out, _ = run("train", "-h")
    assert code == 0 and "-ps PARAMS" in out and "-pf FILE" in out
    assert re.search(r"^  sample_alpha +0.5 +.*; in \[0, inf\)$", out, re.M)


def test_a_warning_is_one_line(tmp_path):
    # the Theano original's parameter files carry hidden_act/adapt: accepted with a one-line warning
    markov_sessions(n_sessions=60, n_items=10, seed=2).to_csv(tmp_path / "train.tsv", sep="\t", index=False)
    (tmp_path / "p.yaml").write_text("hidden_act: tanh\nlayers: [8]\nn_epochs: 1\nn_sample: 0\nbatch_size: 8\n")
    code, out, err = run("train", tmp_path / "train.tsv", "-pf", tmp_path / "p.yaml", "-d", "cpu")
    assert code == 0, err
    warned = [line for line in err.splitlines() if "hidden_act" in line]
    assert len(warned) == 1 and warned[0].startswith("gru4rec: warning: ") and "no effect" in warned[0]
    assert "warnings.warn" not in err and "UserWarning" not in err
