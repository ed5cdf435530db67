"""Parameter strings, reference parameter files (read as data), YAML/JSON, validation errors."""
import pytest

from gru4rec.errors import ParameterError
from gru4rec.params import PARAMETERS, format_param_string, load_param_file, parse_param_string, validate_params

REFERENCE_FILE = """from collections import OrderedDict
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


def test_defaults_and_derived_final_act():
    p = validate_params({})
    assert set(p) == set(PARAMETERS) - {"elu_param"}
    assert p["final_act"] == "softmax" and p["layers"] == [100]
    assert validate_params({"loss": "bpr-max"})["final_act"] == "elu-1"
    assert validate_params({"loss": "xe_logit"})["final_act"] == "softmax_logit"


def test_reference_parameter_string():
    s = "loss=bpr-max,layers=200/200,constrained_embedding=False,embedding=layersize,final_act=elu-0.5,n_sample=0,momentum=0.3"
    p = validate_params(parse_param_string(s))
    assert p["layers"] == [200, 200] and p["constrained_embedding"] is False and p["embedding"] == 200
    assert p["final_act"] == "elu-0.5" and p["n_sample"] == 0 and p["momentum"] == pytest.approx(0.3)
    again = validate_params(parse_param_string(format_param_string(p)))
    assert again == p


def test_elu_param_shorthand():
    assert validate_params({"loss": "bpr-max", "elu_param": 0.5})["final_act"] == "elu-0.5"
    assert validate_params({"loss": "bpr-max", "elu_param": 0})["final_act"] == "linear"
    with pytest.raises(ParameterError, match="elu_param"):
        validate_params({"loss": "cross-entropy", "elu_param": 1})
    with pytest.raises(ParameterError, match="conflicts"):
        validate_params({"loss": "bpr-max", "elu_param": 1, "final_act": "tanh"})


def test_reference_py_file_is_read_without_executing(tmp_path):
    f = tmp_path / "rr.py"
    f.write_text(REFERENCE_FILE)
    p = validate_params(load_param_file(f))
    assert p["loss"] == "bpr-max" and p["final_act"] == "elu-0.5" and p["layers"] == [224] and p["bpreg"] == 1.95
    evil = tmp_path / "evil.py"
    marker = tmp_path / "pwned"
    evil.write_text(f"import os\nos.system('touch {marker}')\ngru4rec_params = dict(layers=[int(open('{marker}').read())])\n")
    with pytest.raises(ParameterError, match="literal"):
        load_param_file(evil)
    assert not marker.exists()


def test_yaml_and_json_files(tmp_path):
    (tmp_path / "p.yaml").write_text("loss: cross-entropy\nlayers: [64]\nlogq: 1.0\n")
    (tmp_path / "p.json").write_text('{"loss": "bpr-max", "final_act": "linear"}')
    assert validate_params(load_param_file(tmp_path / "p.yaml"))["logq"] == 1.0
    assert validate_params(load_param_file(tmp_path / "p.json"))["final_act"] == "linear"


@pytest.mark.parametrize("params,match", [
    ({"layer": 100}, "unknown parameter 'layer'.*did you mean 'layers'"),
    ({"batch_size": 0}, "batch_size"),
    ({"batch_size": "big"}, "batch_size"),
    ({"dropout_p_hidden": 1.0}, "dropout_p_hidden"),
    ({"learning_rate": 0}, "learning_rate"),
    ({"momentum": -0.1}, "momentum"),
    ({"layers": "100/x"}, "layers"),
    ({"constrained_embedding": "maybe"}, "True or False"),
    ({"loss": "mse"}, "loss"),
    ({"loss": "cross-entropy", "final_act": "elu-1"}, "softmax"),
    ({"loss": "bpr-max", "final_act": "softmax"}, "linear, relu, tanh"),
    ({"embedding": -3}, "embedding"),
])
def test_bad_values_are_one_line_errors(params, match):
    with pytest.raises(ParameterError, match=match) as e:
        validate_params(params)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content,name,match", [
    ("x = 1\n", "p.py", "no 'gru4rec_params"),
    ("gru4rec_params = OrderedDict([('layers', [100]\n", "p.py", "line 1"),
    ("loss: [unclosed\n", "p.yaml", "cannot parse YAML"),
    ("[1, 2]", "p.json", "mapping"),
    ("a=1", "p.txt", "unsupported"),
    ("{\"lr\": 0.1}", "p.json", "unknown parameter 'lr'"),
])
def test_bad_parameter_files(tmp_path, content, name, match):
    f = tmp_path / name
    f.write_text(content)
    with pytest.raises(ParameterError, match=match):
        load_param_file(f)


def test_malformed_parameter_string():
    with pytest.raises(ParameterError, match="malformed parameter 'layers'"):
        parse_param_string("layers,loss=bpr-max")
