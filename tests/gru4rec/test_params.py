"""Parameter strings, reference parameter files (read as data), YAML/JSON, validation errors."""

import json

import pytest

from gru4rec.errors import ParameterError
from gru4rec.params import PARAMETERS, format_param_string, load_param_file, parse_param_string, validate_params

# the shape of the reference's paramfiles/*.py (values of its RetailRocket file)
BPRMAX_FILE = """from collections import OrderedDict
gru4rec_params = OrderedDict([
('loss', 'bpr-max'),
('constrained_embedding', True),
('embedding', 0),
('elu_param', 0.5),
('layers', [224]),
('n_epochs', 10),
('batch_size', 80),
('dropout_p_embed', 0.5),
('dropout_p_hidden', 0.05),
('learning_rate', 0.05),
('momentum', 0.4),
('n_sample', 2048),
('sample_alpha', 0.4),
('bpreg', 1.95),
('logq', 0.0)
])
"""
# the reference's cross-entropy files carry elu_param=0 (the PyTorch port's "no activation")
XE_FILE = """import collections
gru4rec_params = collections.OrderedDict([('loss', 'cross-entropy'), ('elu_param', 0), ('layers', [480]),
    ('batch_size', 48), ('dropout_p_hidden', 0.2), ('learning_rate', 0.07), ('sample_alpha', 0.2), ('logq', 1.0)])
"""


def test_defaults_and_derived_final_act():
    p = validate_params({})
    assert list(p) == [n for n in PARAMETERS if n != "elu_param"]
    assert {n: v for n, v in p.items() if n != "final_act"} == {
        n: s.default for n, s in PARAMETERS.items() if n not in ("final_act", "elu_param")
    }
    assert p["final_act"] == "softmax"
    assert validate_params({"loss": "bpr-max"})["final_act"] == "elu-1"
    assert validate_params({"loss": "top1"})["final_act"] == "elu-1"
    assert validate_params({"loss": "xe_logit"})["final_act"] == "softmax_logit"


def test_every_parameter_is_described():
    for name, spec in PARAMETERS.items():
        assert spec.description and "\n" not in spec.description, name


def test_validate_returns_a_new_dict_and_is_idempotent():
    given = {
        "layers": "64/32",
        "embedding": "layersize",
        "constrained_embedding": "false",
        "loss": "bpr-max",
        "elu_param": "0.5",
    }
    snapshot = dict(given)
    p = validate_params(given)
    assert given == snapshot  # the caller's dict is not touched
    assert p["layers"] == [64, 32] and p["embedding"] == 64 and p["constrained_embedding"] is False
    assert "elu_param" not in p and p["final_act"] == "elu-0.5"
    assert validate_params(p) == p  # a saved model's params validate to themselves


@pytest.mark.parametrize(
    "value,expected",
    [
        ("True", True),
        ("true", True),
        ("1", True),
        (1, True),
        ("False", False),
        ("false", False),
        ("0", False),
        (0, False),
    ],
)
def test_boolean_spellings(value, expected):
    assert validate_params({"time_sort": value})["time_sort"] is expected


def test_numeric_coercion():
    p = validate_params(
        {
            "batch_size": "32",
            "n_sample": 1e3,
            "learning_rate": "0.1",
            "momentum": 0,
            "sample_store_size": "12345678901234567",
        }
    )
    assert p["batch_size"] == 32 and type(p["batch_size"]) is int
    assert p["n_sample"] == 1000 and type(p["n_sample"]) is int
    assert p["learning_rate"] == 0.1 and type(p["momentum"]) is float
    assert p["sample_store_size"] == 12345678901234567  # no float rounding of long integers


def test_reference_parameter_string_round_trip():
    s = (
        "loss=bpr-max,layers=200/200,constrained_embedding=False,embedding=layersize,final_act=elu-0.5,"
        "n_sample=0,momentum=0.3"
    )
    p = validate_params(parse_param_string(s))
    assert p["layers"] == [200, 200] and p["constrained_embedding"] is False and p["embedding"] == 200
    assert p["final_act"] == "elu-0.5" and p["n_sample"] == 0 and p["momentum"] == pytest.approx(0.3)
    assert validate_params(parse_param_string(format_param_string(p))) == p
    assert parse_param_string("final_act=selu-1.0507-1.6733, layers = 100 ,")["final_act"] == "selu-1.0507-1.6733"


def test_elu_param_shorthand():
    assert validate_params({"loss": "bpr-max", "elu_param": 0.5})["final_act"] == "elu-0.5"
    assert validate_params({"loss": "bpr-max", "elu_param": 0})["final_act"] == "linear"
    assert validate_params({"loss": "bpr-max", "elu_param": 1, "final_act": "elu-1.0"})["final_act"] == "elu-1"
    assert validate_params({"loss": "cross-entropy", "elu_param": 0})["final_act"] == "softmax"
    with pytest.raises(ParameterError, match="elu_param=1 .*loss='cross-entropy'"):
        validate_params({"loss": "cross-entropy", "elu_param": 1})
    with pytest.raises(ParameterError, match="conflicts with final_act='tanh'"):
        validate_params({"loss": "bpr-max", "elu_param": 1, "final_act": "tanh"})


@pytest.mark.parametrize(
    "loss,final_act",
    [
        ("cross-entropy", "softmax"),
        ("xe_logit", "softmax_logit"),
        ("bpr-max", "linear"),
        ("bpr-max", "relu"),
        ("top1-max", "tanh"),
        ("top1", "leaky-0.01"),
        ("bpr", "elu-0.5"),
        ("bpr-max", "selu-1.0507-1.6733"),
    ],
)
def test_valid_pairings(loss, final_act):
    assert validate_params({"loss": loss, "final_act": final_act})["final_act"] == final_act


@pytest.mark.parametrize(
    "loss,final_act,valid",
    [
        ("cross-entropy", "elu-1", "softmax"),
        ("xe_logit", "softmax", "softmax_logit"),
        ("bpr-max", "softmax", "linear, relu, tanh, leaky-X, elu-X, selu-X-Y"),
        ("top1", "elu-x", "linear, relu, tanh"),
    ],
)
def test_bad_pairing_names_both_and_lists_valid(loss, final_act, valid):
    with pytest.raises(ParameterError) as e:
        validate_params({"loss": loss, "final_act": final_act})
    msg = str(e.value)
    assert f"final_act='{final_act}'" in msg and f"loss='{loss}'" in msg and valid in msg


def test_reference_py_files_are_read_without_executing(tmp_path):
    f = tmp_path / "rr.py"
    f.write_text(BPRMAX_FILE)
    p = validate_params(load_param_file(f))
    assert p["loss"] == "bpr-max" and p["final_act"] == "elu-0.5" and p["layers"] == [224] and p["bpreg"] == 1.95
    f.write_text(XE_FILE)
    p = validate_params(load_param_file(f))
    assert p["final_act"] == "softmax" and p["logq"] == 1.0 and p["layers"] == [480]
    evil, marker = tmp_path / "evil.py", tmp_path / "pwned"
    evil.write_text(
        f"import os\nos.system('touch {marker}')\ngru4rec_params = OrderedDict([\n"
        f"('loss', 'bpr-max'),\n('layers', [int(open('{marker}').read())]),\n])\n"
    )
    with pytest.raises(ParameterError, match=r"evil.py: line 5: .*only literal values, found: int\(open"):
        load_param_file(evil)
    assert not marker.exists()


def test_yaml_and_json_files(tmp_path):
    (tmp_path / "p.yaml").write_text("loss: cross-entropy\nlayers: [64]\nlogq: 1.0\nfinal_act: null\n")
    (tmp_path / "p.yml").write_text("gru4rec_params:\n  loss: bpr-max\n  elu_param: 0.5\n")
    (tmp_path / "p.json").write_text(json.dumps({"loss": "bpr-max", "final_act": "linear"}))
    assert validate_params(load_param_file(tmp_path / "p.yaml"))["logq"] == 1.0
    assert validate_params(load_param_file(tmp_path / "p.yml"))["final_act"] == "elu-0.5"
    assert validate_params(load_param_file(tmp_path / "p.json"))["final_act"] == "linear"


@pytest.mark.parametrize(
    "params,match",
    [
        ({"layer": 100}, "unknown parameter 'layer' \\(did you mean 'layers'\\?\\); valid parameters: layers, loss,"),
        ({"batch_size": 0}, r"batch_size=0 is not valid: expected a value in \[1, inf\)"),
        ({"batch_size": "big"}, "batch_size='big' is not valid: expected an integer"),
        ({"batch_size": 2.5}, "batch_size=2.5"),
        ({"n_epochs": True}, "n_epochs=True"),
        ({"dropout_p_hidden": 1.0}, r"dropout_p_hidden=1.0 .* \[0, 1\)"),
        ({"learning_rate": 0}, r"learning_rate=0.0 .* \(0, inf\)"),
        ({"learning_rate": "nan"}, "learning_rate='nan' .*finite"),
        ({"momentum": -0.1}, "momentum=-0.1"),
        ({"layers": "100/x"}, "layers='100/x'.*positive integers"),
        ({"layers": [0]}, "layers"),
        ({"constrained_embedding": "maybe"}, "constrained_embedding='maybe' .*True or False"),
        ({"loss": "mse"}, "loss='mse' .*cross-entropy, xe_logit, bpr-max, top1-max, top1, bpr"),
        ({"loss": 3}, "loss=3 .*a string"),
        ({"embedding": -3}, "embedding=-3"),
        ({"embedding": "big"}, "embedding='big' .*'layersize'"),
    ],
)
def test_bad_values_are_one_line_errors(params, match):
    with pytest.raises(ParameterError, match=match) as e:
        validate_params(params)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    "content,name,match",
    [
        ("x = 1\n", "p.py", "p.py: no 'gru4rec_params"),
        ("gru4rec_params = OrderedDict([('layers', [100]\n", "p.py", "p.py: line 1: invalid Python syntax"),
        ("gru4rec_params = OrderedDict(**x)\n", "p.py", r"p.py: line 1: '\*\*' is not allowed"),
        ("gru4rec_params = OrderedDict([1, 2])\n", "p.py", r"p.py: line 1: .*\(name, value\) pairs"),
        ("gru4rec_params = load()\n", "p.py", "p.py: line 1: gru4rec_params must be an OrderedDict"),
        ("loss: [unclosed\n", "p.yaml", "p.yaml: cannot parse YAML"),
        ('{"loss": ', "p.json", "p.json: cannot parse JSON"),
        ("[1, 2]", "p.json", "p.json: expected a mapping of parameter names to values, got list"),
        ("a=1", "p.txt", "p.txt: unsupported parameter file type"),
        ('{"lr": 0.1}', "p.json", "p.json: unknown parameter 'lr'"),
    ],
)
def test_bad_parameter_files(tmp_path, content, name, match):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(ParameterError, match=match) as e:
        load_param_file(f)
    assert "\n" not in str(e.value)


def test_missing_directory_and_binary_parameter_files(tmp_path):
    with pytest.raises(ParameterError, match="nope.py: parameter file not found"):
        load_param_file(tmp_path / "nope.py")
    with pytest.raises(ParameterError, match="is a directory"):
        load_param_file(tmp_path)
    (tmp_path / "b.json").write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(ParameterError, match="b.json: cannot read"):
        load_param_file(tmp_path / "b.json")


@pytest.mark.parametrize(
    "s,match",
    [
        ("layers,loss=bpr-max", "malformed parameter 'layers'"),
        ("loss=", "malformed parameter 'loss='"),
        ("=3", "malformed parameter '=3'"),
        ("n_sampel=3", "unknown parameter 'n_sampel' \\(did you mean 'n_sample'"),
        ("loss=bpr-max,loss=top1", "loss is given twice"),
    ],
)
def test_malformed_parameter_string(s, match):
    with pytest.raises(ParameterError, match=match):
        parse_param_string(s)


@pytest.mark.parametrize("suffix", [".py", ".json"])
def test_theano_keys_without_effect_load_with_a_warning(tmp_path, suffix):
    f = tmp_path / f"p{suffix}"
    pairs = [("loss", "bpr-max"), ("hidden_act", "tanh"), ("adapt", "adagrad"), ("layers", [100])]
    f.write_text(f"gru4rec_params = OrderedDict({pairs!r})\n" if suffix == ".py" else json.dumps(dict(pairs)))
    with pytest.warns(UserWarning) as record:
        params = load_param_file(f)
    assert params == {"loss": "bpr-max", "layers": [100]}
    messages = [str(w.message) for w in record]
    assert len(messages) == 2 and all("\n" not in m and str(f) in m and "no effect" in m for m in messages)
    assert "hidden_act='tanh'" in messages[0] and "adapt='adagrad'" in messages[1]


@pytest.mark.parametrize(
    "key,value,match",
    [
        ("hidden_act", "relu", "hidden_act='relu' is not supported.*tanh"),
        ("adapt", "adam", "adapt='adam' is not supported.*adagrad"),
    ],
)
def test_theano_keys_with_other_values_are_errors(tmp_path, key, value, match):
    f = tmp_path / "p.json"
    f.write_text(json.dumps({"loss": "bpr-max", key: value}))
    with pytest.raises(ParameterError, match=match) as e:
        load_param_file(f)
    assert "\n" not in str(e.value) and str(f) in str(e.value)
