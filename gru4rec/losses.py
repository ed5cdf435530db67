"""Final activations and losses over the (slots x scored columns) score matrix O.

Column i of O is the target of row i (the diagonal of the first b columns); the other columns
(the other slots' targets and the extra samples) are the negatives. Each loss returns its value
(a 0-dim tensor, summed over rows) and dLoss/dO. The two losses the papers recommend,
cross-entropy and BPR-max, have hand-written gradients for speed; the four legacy losses, which
exist only for comparison, take their gradient from autograd.
"""

from __future__ import annotations

import re

import torch

from .errors import ParameterError

# the losses' names and their pairing with final activations are checked with the parameters
from .params import _FLOAT, LOSSES, RANKING_ACTIVATIONS, RANKING_LOSSES, check_pairing  # noqa: F401

EPS = 1e-24  # added inside the logarithms, as the references do


# ------------------------------------------------------------------------------------------------
# activations of the ranking losses: O -> (A, backward), backward(dA) = dA * f'(O), in place where possible
def make_activation(final_act: str):
    """Return f(O) -> (A, backward) for a ranking-loss final activation."""
    name, *args = final_act.split("-", 1)
    if name == "linear":
        return lambda O: (O, lambda dA: dA)
    if name == "relu":

        def relu(O):
            A = torch.relu(O)
            return A, lambda dA: dA.masked_fill_(O <= 0, 0.0)

        return relu
    if name == "tanh":

        def tanh(O):
            A = torch.tanh(O)
            return A, lambda dA: dA.mul_(1 - A * A)  # tanh' = 1 - tanh^2

        return tanh
    if name == "leaky":
        alpha = float(args[0])

        def leaky(O):
            return torch.where(O > 0, O, alpha * O), lambda dA: dA.mul_(torch.where(O > 0, 1.0, alpha))

        return leaky
    if name == "elu":
        alpha = float(args[0])

        def elu(O):
            A = torch.nn.functional.elu(O, alpha)
            # one fused pass from the output (f' = A + alpha where A <= 0, else 1): the obvious
            # where/masked_fill formulation costs about ten times as much on a (80 x 2128) matrix
            return A, lambda dA: torch.ops.aten.elu_backward(dA, alpha, 1.0, 1.0, True, A)

        return elu
    if name == "selu":
        # selu-X-Y: X is the scale (lambda), Y the alpha of the negative branch
        scale_s, alpha_s = re.fullmatch(rf"({_FLOAT})-({_FLOAT})", args[0]).groups()
        scale, alpha = float(scale_s), float(alpha_s)

        def selu(O):
            neg = alpha * torch.expm1(torch.clamp(O, max=0))
            A = scale * torch.where(O > 0, O, neg)
            # f' = scale for O > 0, else scale * alpha * e^O = scale * (neg + alpha)
            return A, lambda dA: dA.mul_(scale * torch.where(O > 0, torch.ones_like(O), neg + alpha))

        return selu
    raise ParameterError(f"final_act='{final_act}' is not a ranking activation ({RANKING_ACTIVATIONS})")


def _diag(M):
    """Diagonal of the first b columns of a (b, n) matrix, as a view."""
    return M.diagonal()


# ------------------------------------------------------------------------------------------------
# losses: (O, offset, scale) -> (loss, scale * dLoss/dO)
# `scale` (1 / batch_size in training) is folded into per-row factors, which saves a pass over O.
def _rowdot(a, b):
    """sum_j a_ij b_ij for every row i, as a column (vecdot: one pass, no temporary; bmm is ~3x slower here)."""
    return torch.linalg.vecdot(a, b).unsqueeze(1)


def cross_entropy(O, offset=None, scale=1.0):
    """-sum_i log(softmax(O - offset)[i, i] + 1e-24); offset is the log-Q correction per column."""
    if offset is not None:
        O = O - offset
    X = torch.softmax(O, dim=1)
    xd = _diag(X)
    loss = -torch.log(xd + EPS).sum()
    w = (xd * scale / (xd + EPS)).unsqueeze(1)  # d(-log(x_ii + eps)) / dO = (X - I) * x_ii / (x_ii + eps)
    dO = X.mul_(w)
    _diag(dO).sub_(w.squeeze(1))
    return loss, dO


def xe_logit(O, offset=None, scale=1.0):
    """Cross-entropy computed from logits with log-softmax (no epsilon needed)."""
    if offset is not None:
        O = O - offset
    logX = torch.log_softmax(O, dim=1)
    loss = -_diag(logX).sum()
    # d(-log softmax(O)_ii) / dO_ij = softmax(O)_ij - [j == i]
    dO = logX.exp_().mul_(scale)
    _diag(dO).sub_(scale)
    return loss, dO


def _softmax_negatives(A):
    """Row-wise softmax over the negatives: the diagonal (target) is set to -inf first, so it is
    neither a term nor the row maximum that softmax subtracts (a target far above its negatives
    would otherwise underflow every term to 0 and give 0/0). Differentiable under autograd.
    """
    masked = A.clone()
    _diag(masked).fill_(float("-inf"))
    return torch.softmax(masked, dim=1)


def bpr_max(A, bpreg, scale=1.0):
    """BPR-max on activated scores A; returns (loss, scale * dLoss/dA).

    loss_i = -log(sum_j s_ij sigmoid(A_ii - A_ij) + eps) + bpreg * sum_j s_ij A_ij^2,
    s_i = softmax of row i over the negatives.
    """
    s = _softmax_negatives(A)
    sig = torch.sub(_diag(A).unsqueeze(1), A).sigmoid_()
    P = _rowdot(s, sig)
    T = A * A
    Q = _rowdot(s, T)
    loss = (-torch.log(P + EPS) + bpreg * Q).sum()
    inv = scale / (P + EPS)
    # d/dA_ik (k != i): s_ik [ (P_i - sig_ik^2) / (P_i + eps) + bpreg (A_ik^2 + 2 A_ik - Q_i) ]
    sig.mul_(sig)  # sig^2
    R = _rowdot(s, sig)
    T.add_(A, alpha=2.0).mul_(bpreg * scale)  # bpreg (A^2 + 2A)
    T.addcmul_(sig, inv, value=-1.0)  # - sig^2 / (P + eps)
    T.add_(P * inv - (bpreg * scale) * Q)  # + P / (P + eps) - bpreg Q
    dA = T.mul_(s)
    # d/dA_ii = -sum_j s_ij sig_ij (1 - sig_ij) / (P_i + eps) = -(P_i - R_i) / (P_i + eps)
    _diag(dA).copy_(((R - P) * inv).squeeze(1))
    return loss, dA


def _autograd_loss(fn):
    def wrapped(A, scale=1.0):
        with torch.enable_grad():
            A = A.detach().requires_grad_(True)
            loss = fn(A)
            (dA,) = torch.autograd.grad(loss, A)
        return loss.detach(), dA.mul_(scale)

    return wrapped


@_autograd_loss
def top1_max(A):
    """sum_i sum_j s_ij (sigmoid(A_ij - A_ii) + sigmoid(A_ij^2))."""
    s = _softmax_negatives(A)
    return (s * (torch.sigmoid(A - _diag(A).unsqueeze(1)) + torch.sigmoid(A * A))).sum()


@_autograd_loss
def bpr(A):
    """sum_ij -log sigmoid(A_ii - A_ij)."""
    return -torch.nn.functional.logsigmoid(_diag(A).unsqueeze(1) - A).sum()


@_autograd_loss
def top1(A):
    """sum_i [mean_j (sigmoid(A_ij - A_ii) + sigmoid(A_ij^2)) - sigmoid(A_ii^2) / n_columns]."""
    d = _diag(A)
    per_row = (torch.sigmoid(A - d.unsqueeze(1)) + torch.sigmoid(A * A)).mean(dim=1) - torch.sigmoid(d * d) / A.shape[1]
    return per_row.sum()


class Loss:
    """The configured loss with its final activation: __call__(O, offset, scale) -> (loss, scale * dO).

    `offset` is the log-Q correction per column (logq * log of the column item's sampling
    weight). As in the Theano original it is subtracted from the scores for every loss, before
    the final activation: softmax(O - offset), or f(O - offset) for the ranking losses.
    """

    def __init__(self, loss: str, final_act: str, bpreg: float = 0.0):
        check_pairing(loss, final_act)
        self.name = loss
        if loss in ("cross-entropy", "xe_logit"):
            self._fn = cross_entropy if loss == "cross-entropy" else xe_logit
            return
        act = make_activation(final_act)
        ranking = {
            "bpr-max": lambda A, scale: bpr_max(A, bpreg, scale),
            "top1-max": top1_max,
            "top1": top1,
            "bpr": bpr,
        }[loss]

        def fn(O, offset=None, scale=1.0):
            A, backward = act(O if offset is None else O - offset)  # d(O - offset)/dO = 1
            loss_value, dA = ranking(A, scale)
            return loss_value, backward(dA)

        self._fn = fn

    def __call__(self, O, offset=None, scale=1.0):
        """Loss summed over rows, and scale * dLoss/dO (O is not modified)."""
        return self._fn(O, offset, scale)
