"""Every loss and final activation against a direct NumPy computation of the documented formulas."""

import numpy as np
import pytest
import torch

from gru4rec.errors import ParameterError
from gru4rec.losses import Loss, check_pairing, make_activation

EPS = 1e-24


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_softmax_neg(A):
    """Softmax of each row over the columns other than the row's target (the diagonal)."""
    b = A.shape[0]
    s = np.zeros_like(A)
    for i in range(b):
        cols = [j for j in range(A.shape[1]) if j != i]
        e = np.exp(A[i, cols] - A[i, cols].max())
        s[i, cols] = e / e.sum()
    return s


def np_loss(name, A, bpreg=0.0):
    b, n = A.shape
    d = np.diag(A[:, :b])[:, None]
    if name == "cross-entropy":
        return -np.log(np.diag(np_softmax(A)[:, :b]) + EPS).sum()
    if name == "xe_logit":
        return -np.diag(np.log(np_softmax(A))[:, :b]).sum()
    s = np_softmax_neg(A)
    if name == "bpr-max":
        return (-np.log((s * np_sigmoid(d - A)).sum(1) + EPS) + bpreg * (s * A**2).sum(1)).sum()
    if name == "top1-max":
        return (s * (np_sigmoid(A - d) + np_sigmoid(A**2))).sum()
    if name == "bpr":
        return -np.log(np_sigmoid(d - A)).sum()
    if name == "top1":
        return ((np_sigmoid(A - d) + np_sigmoid(A**2)).mean(1) - np_sigmoid(d[:, 0] ** 2) / n).sum()
    raise ValueError(name)


def np_activation(name, O):
    kind, *rest = name.split("-", 1)
    if kind == "linear":
        return O
    if kind == "relu":
        return np.maximum(O, 0)
    if kind == "tanh":
        return np.tanh(O)
    if kind == "leaky":
        a = float(rest[0])
        return np.where(O > 0, O, a * O)
    if kind == "elu":
        a = float(rest[0])
        return np.where(O > 0, O, a * (np.exp(O) - 1))
    if kind == "selu":
        scale, alpha = (float(v) for v in rest[0].split("-"))
        return scale * np.where(O > 0, O, alpha * (np.exp(O) - 1))
    raise ValueError(name)


def numeric_grad(f, O, h=1e-6):
    g = np.zeros_like(O)
    for idx in np.ndindex(*O.shape):
        up, down = O.copy(), O.copy()
        up[idx] += h
        down[idx] -= h
        g[idx] = (f(up) - f(down)) / (2 * h)
    return g


@pytest.fixture
def scores():
    rng = np.random.default_rng(3)
    return rng.normal(size=(4, 9)) * 1.5  # 4 slots, 4 in-batch targets + 5 sampled columns


ACTIVATIONS = ["linear", "relu", "tanh", "leaky-0.1", "elu-0.5", "elu-1", "selu-1.05-1.67"]
CASES = [("cross-entropy", "softmax"), ("xe_logit", "softmax_logit")] + [
    (loss, act) for loss in ("bpr-max", "top1-max", "bpr", "top1") for act in ACTIVATIONS
]


@pytest.mark.parametrize("loss,act", CASES)
def test_loss_value_and_gradient_match_numpy(loss, act, scores):
    bpreg = 0.7
    fn = Loss(loss, act, bpreg)
    O = torch.tensor(scores, dtype=torch.float64)
    value, dO = fn(O, None, 0.25)  # scale: the training loop passes 1 / batch_size
    assert torch.equal(O, torch.tensor(scores, dtype=torch.float64)), "the loss must not modify the scores"

    def reference(o):
        a = o if loss in ("cross-entropy", "xe_logit") else np_activation(act, o)
        return np_loss(loss, a, bpreg)

    assert float(value) == pytest.approx(reference(scores), rel=1e-9, abs=1e-9)
    expected = numeric_grad(reference, scores)
    np.testing.assert_allclose(dO.numpy() / 0.25, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", ["cross-entropy", "xe_logit"])
def test_logq_offset_is_subtracted_per_column(loss, scores):
    act = "softmax" if loss == "cross-entropy" else "softmax_logit"
    offset = np.linspace(-1, 2, scores.shape[1])
    value, dO = Loss(loss, act)(torch.tensor(scores), torch.tensor(offset))
    assert float(value) == pytest.approx(np_loss(loss, scores - offset), rel=1e-9)
    np.testing.assert_allclose(
        dO.numpy(), numeric_grad(lambda o: np_loss(loss, o - offset), scores), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_values_and_derivatives(act):
    O = np.linspace(-3, 3, 24).reshape(4, 6)  # no point on the kink at 0
    A, backward = make_activation(act)(torch.tensor(O))
    np.testing.assert_allclose(A.numpy(), np_activation(act, O), rtol=1e-12, atol=1e-12)
    deriv = backward(torch.ones_like(A)).numpy()
    h = 1e-6
    num = (np_activation(act, O + h) - np_activation(act, O - h)) / (2 * h)
    np.testing.assert_allclose(deriv, num, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "loss,act",
    [
        ("cross-entropy", "elu-1"),
        ("xe_logit", "softmax"),
        ("bpr-max", "softmax"),
        ("bpr-max", "softmax_logit"),
        ("top1", "elu"),
        ("bpr", "sigmoid"),
        ("nonsense", "softmax"),
    ],
)
def test_bad_pairings_are_parameter_errors(loss, act):
    with pytest.raises(ParameterError) as e:
        check_pairing(loss, act)
    assert act in str(e.value) or loss in str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("loss", ["top1-max", "bpr-max"])
def test_max_losses_stay_finite_when_the_target_dominates_every_negative(loss):
    # the softmax over the negatives must not subtract a row maximum that includes the target:
    # a target 200 above its negatives used to turn the top1-max row into NaN (float32)
    scores = np.zeros((3, 6))
    scores[0, 0], scores[1, 1] = 200.0, 150.0
    value, dO = Loss(loss, "linear", 0.5)(torch.tensor(scores, dtype=torch.float32))
    assert torch.isfinite(dO).all()
    assert float(value) == pytest.approx(np_loss(loss, scores, 0.5), rel=1e-5)


@pytest.mark.parametrize(
    "loss,act", [("bpr-max", "elu-0.5"), ("top1-max", "linear"), ("bpr", "tanh"), ("top1", "relu")]
)
def test_logq_offset_is_subtracted_before_the_ranking_activation(loss, act, scores):
    # as the Theano original does for every loss: A = f(O - offset)
    offset = np.linspace(-1, 2, scores.shape[1])
    value, dO = Loss(loss, act, 0.7)(torch.tensor(scores), torch.tensor(offset), 0.5)

    def reference(o):
        return np_loss(loss, np_activation(act, o - offset), 0.7)

    assert float(value) == pytest.approx(reference(scores), rel=1e-9)
    np.testing.assert_allclose(dO.numpy() / 0.5, numeric_grad(reference, scores), rtol=1e-5, atol=1e-6)
