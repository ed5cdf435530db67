"""A hostile new user's inputs to the gru4rec command: every one ends in one line on stderr naming the
parameter, option or file and what was expected, exit code 2, no traceback, and no output file
left behind. Representative cases run the real entry point (python -m gru4rec) in a subprocess, the
rest call main() in-process."""

import contextlib
import io
import json
import re
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from gru4rec import GRU4Rec
from gru4rec.cli import main
from gru4rec.errors import DataError, ParameterError
from gru4rec.params import load_param_file
from gru4rec.recommend import recommend

DATA = Path(__file__).resolve().parents[1] / "data" / "baselines"
TRAIN, TEST = DATA / "diginetica_train.tsv", DATA / "diginetica_test.tsv"
BASE = {"layers": "8", "n_epochs": "1", "batch_size": "8", "n_sample": "8", "sample_store_size": "1000"}


def ps(**changes) -> str:
    """A -ps string of the tiny settings with some of them changed (not appended: a name given twice
    is an error of its own)."""
    return ",".join(f"{k}={v}" for k, v in dict(BASE, **changes).items())


def run(*args):
    """main() in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def run_script(*args):
    """The real entry point in a subprocess: (exit code, stdout, stderr)."""
    r = subprocess.run([sys.executable, "-m", "gru4rec", *map(str, args)], capture_output=True, text=True, timeout=120)
    return r.returncode, r.stdout, r.stderr


def assert_one_line_error(code, err, match):
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("gru4rec: error: ")]
    assert len(lines) == 1 and err.rstrip("\n").endswith(lines[0]), err
    assert re.search(match, lines[0]), lines[0]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_inputs")
    code, _, err = run("train", TRAIN, "-ps", ps(), "-s", d / "model.safetensors", "-d", "cpu", "-q")
    assert code == 0, err
    return d / "model.safetensors"


def edited_header(src: Path, dst: Path, edit) -> Path:
    """A copy of a model file whose safetensors JSON header went through edit(header, gru4rec_header)."""
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    ours = json.loads(header["__metadata__"]["gru4rec"])
    text = edit(header, ours)  # a str replaces the GRU4Rec header's text
    header["__metadata__"]["gru4rec"] = text if isinstance(text, str) else json.dumps(ours)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])
    return dst


# -- training parameters -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "changes,match",
    [
        ({"layers": "0"}, r"parameter layers='0' is not valid: expected a list of positive integers"),
        ({"layers": "8/0"}, r"layers='8/0' is not valid"),
        ({"batch_size": "-1"}, r"parameter batch_size=-1 is not valid: expected a value in \[1, inf\)"),
        ({"n_epochs": "0"}, r"parameter n_epochs=0 is not valid: expected a value in \[1, inf\)"),
        ({"n_epochs": "1.5"}, r"n_epochs='1.5' is not valid: expected an integer"),
        ({"learning_rate": "-1"}, r"learning_rate=-1.0 is not valid: expected a value in \(0, inf\)"),
        ({"n_sample": "-5"}, r"n_sample=-5 is not valid: expected a value in \[0, inf\)"),
        ({"dropout_p_hidden": "1.5"}, r"dropout_p_hidden=1.5 is not valid: expected a value in \[0, 1\)"),
        ({"dropout_p_embed": "-0.1"}, r"dropout_p_embed=-0.1 is not valid"),
        ({"sample_store_size": "-1"}, r"sample_store_size=-1 is not valid"),
        ({"batch_size": "inf"}, r"batch_size='inf' is not valid: expected an integer"),
        ({"elu_param": "nan"}, r"elu_param='nan' is not valid: expected a finite number"),
        # a typo of a size: refused before anything is allocated (it was a RuntimeError traceback)
        ({"layers": "1000000000000"}, r"layers=\[1000000000000\].* need at least .* GiB .* use smaller layers"),
    ],
)
def test_bad_parameter_values(tmp_path, changes, match):
    code, out, err = run("train", TRAIN, "-ps", ps(**changes), "-s", tmp_path / "m.safetensors", "-d", "cpu")
    assert_one_line_error(code, err, match)
    assert "Epoch1" not in out and list(tmp_path.iterdir()) == []


def test_bad_parameters_through_the_entry_point(tmp_path):
    code, out, err = run_script("train", TRAIN, "-ps", ps(layers="0"), "-s", tmp_path / "m.safetensors", "-d", "cpu")
    assert_one_line_error(code, err, r"parameter layers='0' is not valid")
    code, _, err = run_script("train", TRAIN, "-ps", ps(layers="10000000000000"), "-d", "cpu")
    assert_one_line_error(code, err, r"need at least .* GiB")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args,match",
    [
        (["--seed", "-1"], r"argument --seed: expected an integer in \[0, 4294967295\], got '-1'"),
        (["--seed", str(2**70)], r"argument --seed: expected an integer in \[0, 4294967295\]"),
        (["--eval-batch-size", "0"], r"argument --eval-batch-size: expected a positive integer, got '0'"),
        (
            ["-tk", "SessionId"],
            r"-sk, -ik and -tk must name three different columns, got -sk SessionId, .*-tk SessionId",
        ),
        (["-sk", "ItemId"], r"-sk, -ik and -tk must name three different columns"),
        (["-ik", ""], r"-ik: the column name is empty"),
        (["-t", TEST, "-m", "5", "5"], r"-m: cut-off\(s\) 5 given more than once"),
    ],
)
def test_bad_options_of_train(tmp_path, args, match):
    code, out, err = run("train", TRAIN, "-ps", ps(), "-s", tmp_path / "m.safetensors", "-d", "cpu", *args)
    assert_one_line_error(code, err, match)
    assert "Epoch1" not in out and list(tmp_path.iterdir()) == []


# -- parameter files ---------------------------------------------------------------------------------
EVIL = {
    "statement.py": 'import os; os.system("touch {marker}")\ngru4rec_params = {{"layers": [8], "n_epochs": 1}}\n',
    "value.py": 'gru4rec_params = __import__("os").system("touch {marker}")\n',
    "inside.py": 'gru4rec_params = dict(layers=__import__("os").system("touch {marker}"))\n',
    "call.py": 'gru4rec_params = OrderedDict([("layers", [len(__import__("os").popen("touch {marker}").read())])])\n',
    "yaml.yaml": '!!python/object/apply:os.system ["touch {marker}"]\n',
}


@pytest.mark.parametrize("name", sorted(EVIL))
def test_a_parameter_file_is_read_as_data_and_never_run(tmp_path, name):
    marker = tmp_path / "pwned"
    f = tmp_path / name
    f.write_text(EVIL[name].format(marker=marker))
    code, out, err = (
        run_script("train", TRAIN, "-pf", f, "-d", "cpu", "-q")
        if name == "statement.py"
        else run("train", TRAIN, "-pf", f, "-d", "cpu", "-q")
    )
    assert not marker.exists(), "the parameter file was executed"
    if name == "statement.py":  # the other statements are not run; the literal mapping is the data
        assert code == 0, err
        assert "layers=8," in out
    else:
        assert_one_line_error(code, err, re.escape(str(f)) + r": .*(literal|never executed|cannot parse YAML)")


@pytest.mark.parametrize(
    "name,content,match",
    [
        ("nope.py", None, r"nope.py: parameter file not found"),
        ("bad.yaml", "layers: [8\n", r"bad.yaml: cannot parse YAML"),
        ("bad.json", '{"layers": ', r"bad.json: cannot parse JSON"),
        ("list.yaml", "- 1\n- 2\n", r"list.yaml: expected a mapping of parameter names to values, got list"),
        ("empty.yaml", "", r"empty.yaml: expected a mapping .*got NoneType"),
        ("syntax.py", "gru4rec_params = {'layers': [8]\n", r"syntax.py: line 1: invalid Python syntax"),
        ("none.py", "x = 1\n", r"none.py: no 'gru4rec_params"),
        ("typo.json", '{"layer": [8]}', r"typo.json: unknown parameter 'layer' \(did you mean 'layers'\?\)"),
        # a bad value names the file it came from (it did not)
        ("nested.json", '{"layers": {"a": 1}}', r"nested.json: parameter layers=\{'a': 1\} is not valid"),
        ("zero.yaml", "n_epochs: 0\n", r"zero.yaml: parameter n_epochs=0 is not valid"),
    ],
)
def test_bad_parameter_files(tmp_path, name, content, match):
    f = tmp_path / name
    if content is not None:
        f.write_text(content)
    code, out, err = run("train", TRAIN, "-pf", f, "-s", tmp_path / "m.safetensors", "-d", "cpu")
    assert_one_line_error(code, err, match)
    assert not (tmp_path / "m.safetensors").exists()
    with pytest.raises(ParameterError) as e:
        load_param_file(f)
    assert "\n" not in str(e.value) and str(f) in str(e.value)


# -- model files -------------------------------------------------------------------------------------
def _shape(h, g):
    name = next(k for k in h if k != "__metadata__" and not k.startswith("__item"))
    h[name]["shape"] = [3, 3]


def _set(key, value):
    def edit(h, g):
        g[key] = value

    return edit


def _params(key, value):
    def edit(h, g):
        g["params"][key] = value

    return edit


def _non_json(h, g):
    return "{not json"


@pytest.mark.parametrize(
    "edit,match",
    [
        (_shape, r"is not a GRU4Rec model file \(cannot read it as safetensors: .*invalid shape"),
        (_params("layers", [16]), r"model file is inconsistent with its parameters \(shape of"),
        (lambda h, g: g.pop("params") and None, r"model file header has no 'params', expected a mapping"),
        (_set("params", "oops"), r"model file header has 'params' of type str"),
        (_params("batch_size", -3), r"model file header has invalid parameters \(parameter batch_size=-3"),
        (_params("n_epoch", 3), r"model file header has invalid parameters \(unknown parameter 'n_epoch'"),
        (_set("n_items", 5), r"model file header says n_items=5, but its item map holds 120 items"),
        (_set("seed", "x"), r"model file header has seed='x'"),
        (_set("format", "other"), r"is not a GRU4Rec model file \(format 'other'"),
        (_set("format_version", 99), r"format version 99 is newer"),
        (_non_json, r"is not a GRU4Rec model file \(a safetensors file without a GRU4Rec header\)"),
    ],
)
def test_model_files_with_an_edited_header(model_path, tmp_path, edit, match):
    bad = edited_header(model_path, tmp_path / "bad.safetensors", edit)
    code, out, err = run("evaluate", bad, "-t", TEST, "-d", "cpu")
    assert_one_line_error(code, err, re.escape(str(bad)) + ".*" + match)
    with pytest.raises(DataError):
        GRU4Rec.load(bad, device="cpu")


def test_truncated_and_foreign_model_files(model_path, tmp_path):
    data = model_path.read_bytes()
    (tmp_path / "truncated.safetensors").write_bytes(data[:-100])
    (tmp_path / "tsv.safetensors").write_bytes(TRAIN.read_bytes())
    with zipfile.ZipFile(tmp_path / "zip.safetensors", "w") as z:
        z.writestr("a", "b")
    for name in ("truncated", "tsv", "zip"):
        f = tmp_path / f"{name}.safetensors"
        code, out, err = run_script("recommend", f, "--items", "5140", "-o", tmp_path / "r.tsv", "-d", "cpu")
        assert_one_line_error(code, err, re.escape(str(f)) + r" is not a GRU4Rec model file")
        assert not (tmp_path / "r.tsv").exists()


# -- recommend ---------------------------------------------------------------------------------------
def test_recommend_counts_the_unknown_items(model_path):
    code, out, err = run_script("recommend", model_path, "--items", "999999", "abc", "5140", "-k", "3", "-d", "cpu")
    assert code == 0, err
    assert "gru4rec: note: skipped 2 of 3 input item(s): unknown to the model" in err
    assert len(out.splitlines()) == 4  # header + 3


@pytest.mark.parametrize(
    "args,match",
    [
        (["--items", "999999", "abc"], r"none of the 2 item\(s\) given with --items is known to the model"),
        (["--items"], r"argument --items: expected at least one argument"),
        (["--items", ""], r"--items: item 1 of 1 is empty; expected item ids"),
        (["--items", "5140", "-k", "0"], r"argument -k: expected a positive integer, got '0'"),
        (["--items", "5140", "-k", "-3"], r"argument -k: expected a positive integer, got '-3'"),
        (["--items", "5140", "-k", "2.5"], r"argument -k: expected a positive integer, got '2.5'"),
        (["--items", "5140", "-o", ""], r"-o: the output path is empty"),
        (["--items", "5140", "-o", "{d}/no/such/r.tsv"], r"r.tsv: directory .*/no/such does not exist \(for -o\)"),
        (["--items", "5140", "-o", "{d}"], r": is a directory, expected a file path for -o"),
        (["--sessions", "{d}/unknown.tsv", "-o", "{d}/r.tsv"], r"none of the 2 item\(s\) in the 1 session\(s\) of"),
        (["--sessions", "{d}/renamed.tsv", "-o", "{d}/r.tsv"], r"renamed.tsv: missing column\(s\) SessionId, ItemId"),
        (["--sessions", "{d}/nope.tsv", "-o", "{d}/r.tsv"], r"nope.tsv: file not found"),
    ],
)
def test_bad_recommend_inputs(model_path, tmp_path, args, match):
    (tmp_path / "unknown.tsv").write_text("SessionId\tItemId\tTime\n1\t999999999\t1\n1\t999999998\t2\n")
    (tmp_path / "renamed.tsv").write_text("Session\tItem\tTimestamp\n1\t5140\t1\n")
    before = sorted(tmp_path.iterdir())
    code, out, err = run("recommend", model_path, *[a.format(d=tmp_path) for a in args], "-d", "cpu")
    assert_one_line_error(code, err, match)
    assert out == "" and sorted(tmp_path.iterdir()) == before  # no recommendations, no file


def test_k_beyond_the_catalogue_is_clamped_with_a_note(model_path, tmp_path):
    code, out, err = run("recommend", model_path, "--items", "5140", "-k", "1000000", "-o", tmp_path / "r.tsv")
    assert code == 0, err
    assert "gru4rec: note: -k 1000000 is more than the model's 120 items: each list has all of them" in err
    assert len((tmp_path / "r.tsv").read_text().splitlines()) == 1 + 120


def test_recommend_function_checks_k(model_path):
    model = GRU4Rec.load(model_path, device="cpu")
    for k in (0, -1, 2.5, True, "3"):
        with pytest.raises(ParameterError, match="k must be a positive integer"):
            recommend(model, [5140], k=k)
    recs, _ = recommend(model, [5140], k=10**6)
    assert len(recs[0]) == model.n_items


# -- evaluate ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,match",
    [
        (["-t", TEST, "-m", "0"], r"argument -m/--measure: expected a positive integer, got '0'"),
        (["-t", TEST, "-m", "-5"], r"argument -m/--measure: expected a positive integer, got '-5'"),
        (["-t", TEST, "-m", "20", "20"], r"-m: cut-off\(s\) 20 given more than once"),
        (["-t", "{d}/renamed.tsv"], r"renamed.tsv: missing column\(s\) SessionId, ItemId, Time; the file has: "),
        (["-t", "{d}/renamed.tsv", "-sk", "Session"], r"missing column\(s\) ItemId, Time"),
        (["-t", "{d}/unknown.tsv"], r"no test event has an item known to the model"),
    ],
)
def test_bad_evaluate_inputs(model_path, tmp_path, args, match):
    lines = TEST.read_text().splitlines()
    (tmp_path / "renamed.tsv").write_text("\n".join(["Session\tItem\tTimestamp", *lines[1:]]) + "\n")
    (tmp_path / "unknown.tsv").write_text("SessionId\tItemId\tTime\n1\t999999999\t1\n1\t999999998\t2\n")
    code, out, err = run("evaluate", model_path, *[str(a).format(d=tmp_path) for a in args], "-d", "cpu")
    assert_one_line_error(code, err, match)
    assert "Recall@" not in out


def test_evaluate_with_renamed_columns_through_the_entry_point(model_path, tmp_path):
    lines = TEST.read_text().splitlines()
    (tmp_path / "renamed.tsv").write_text("\n".join(["Session\tItem\tTimestamp", *lines[1:]]) + "\n")
    code, out, err = run_script("evaluate", model_path, "-t", tmp_path / "renamed.tsv", "-d", "cpu")
    assert_one_line_error(code, err, r"missing column\(s\) SessionId, ItemId, Time; the file has: Session, Item")
    # with the columns named, it evaluates
    keys = ["-sk", "Session", "-ik", "Item", "-tk", "Timestamp"]
    code, out, err = run("evaluate", model_path, "-t", tmp_path / "renamed.tsv", "-d", "cpu", *keys)
    assert code == 0 and "Recall@20" in out, err


def test_a_cut_off_beyond_the_catalogue_gets_a_note(model_path):
    code, out, err = run("evaluate", model_path, "-t", TEST, "-m", "20", "500", "-d", "cpu")
    assert code == 0, err
    assert "gru4rec: note: cut-off(s) 500 not below the model's 120 items" in err
    assert "Recall@500: 1.000000" in out
