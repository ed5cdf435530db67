"""The hand-written backward pass against autograd on an independent forward written from the formulas."""

import pytest
import torch
import torch.nn.functional as F

from gru4rec.losses import Loss
from gru4rec.model import GRU4RecNetwork
from gru4rec.rng import CounterRandom


def reference_forward(P, mode, layers, n_items, X, Y, H, embed_mask, hidden_masks):
    """The documented network, one op at a time, for autograd (one-hot input as a real matrix product)."""
    Wy, By = P["WyBy"][:, :-1], P["WyBy"][:, -1]
    if mode == "shared":
        x = Wy[X]
    elif mode == "separate":
        x = P["E"][X]
    else:
        x = F.one_hot(X, n_items).to(Wy.dtype)
    if mode != "none" and embed_mask is not None:
        x = x * embed_mask
    for i, n in enumerate(layers):
        h = H[i]
        a = x @ P[f"Wx{i}"] + P[f"Bh{i}"]
        r = torch.sigmoid(a[:, n : 2 * n] + h @ P[f"Wrz{i}"][:, :n])
        z = torch.sigmoid(a[:, 2 * n :] + h @ P[f"Wrz{i}"][:, n:])
        c = torch.tanh(a[:, :n] + (r * h) @ P[f"Wh{i}"])
        x = (1 - z) * h + z * c
        if hidden_masks[i] is not None:
            x = x * hidden_masks[i]
    return x @ Wy[Y].t() + By[Y]


@pytest.mark.parametrize(
    "mode,embedding,constrained", [("none", 0, False), ("separate", 6, False), ("shared", 0, True)]
)
@pytest.mark.parametrize("layers", [[5], [7, 5]])
@pytest.mark.parametrize("loss,act", [("cross-entropy", "softmax"), ("bpr-max", "elu-0.5")])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_backward_matches_autograd(mode, embedding, constrained, layers, loss, act, dropout):
    torch.manual_seed(0)
    n_items, b = 11, 4
    g = torch.Generator().manual_seed(1)
    net = GRU4RecNetwork(n_items, layers, embedding, constrained, torch.device("cpu"), g)
    net.params = {k: v.double() for k, v in net.params.items()}
    net.make_row_tables(0)
    X = torch.tensor([3, 3, 7, 0])  # a repeated input item
    Y = torch.tensor([1, 3, 1, 9, 3, 10, 1])  # targets (b) + samples, with repeats and overlap with X
    H0 = [torch.randn(b, n, dtype=torch.float64) for n in layers]
    H = [h.clone() for h in H0]
    O_u, cache = net.forward_train(X, Y, H, dropout, dropout, CounterRandom(torch.Generator().manual_seed(5)))
    O = net.spread(O_u, cache)  # the score matrix: repeated items share a column of O_u
    lossfn = Loss(loss, act, bpreg=0.5)
    value, dO = lossfn(O.clone())
    dense, sparse = net.backward(cache, net.gather_columns(dO, cache))

    P = {k: v.clone().requires_grad_(True) for k, v in net.params.items()}
    masks = [lay.mask for lay in cache.layers]
    O_ref = reference_forward(P, mode, layers, n_items, X, Y, H0, cache.embed_mask, masks)
    torch.testing.assert_close(O, O_ref.detach())
    (O_ref * dO).sum().backward()  # chain rule from the same dLoss/dO

    for name in net.dense_names:
        torch.testing.assert_close(dense[name], P[name].grad, msg=name)
    for name in net.sparse_names:
        touched, g = sparse[name]
        full = torch.zeros_like(net.params[name]).index_add_(0, touched.ids, g)
        torch.testing.assert_close(full, P[name].grad, msg=name)
    # the state carried forward is the new (dropped-out) output of every layer
    assert all(h.shape == (b, n) for h, n in zip(H, layers))
    assert not any(torch.equal(h, h0) for h, h0 in zip(H, H0))


def test_sparse_and_dense_names_cover_all_parameters():
    for emb, con in [(0, False), (4, False), (0, True)]:
        net = GRU4RecNetwork(9, [5, 3], emb, con, torch.device("cpu"), torch.Generator().manual_seed(0))
        assert sorted(net.sparse_names + net.dense_names) == sorted(net.params)


def test_initialisation_is_uniform_per_gate_block():
    net = GRU4RecNetwork(1000, [50], 0, False, torch.device("cpu"), torch.Generator().manual_seed(0))
    Wx0 = net.params["Wx0"]
    bound = (6.0 / (1000 + 50)) ** 0.5  # each of the three gate blocks is its own (1000 x 50) matrix
    assert Wx0.shape == (1000, 150)
    assert Wx0.abs().max() <= bound and Wx0.abs().max() > 0.95 * bound
    Wrz = net.params["Wrz0"]
    assert Wrz.abs().max() <= (6.0 / 100) ** 0.5
    assert torch.count_nonzero(net.params["Bh0"]) == 0 and torch.count_nonzero(net.params["WyBy"][:, -1]) == 0


@pytest.mark.parametrize("emb,con,mode", [(0, False, "none"), (4, False, "separate"), (0, True, "shared")])
def test_state_names_wy_and_by_and_from_state_restores_the_network(emb, con, mode):
    from gru4rec.model import EMBEDDING_MODES

    net = GRU4RecNetwork(9, [5, 3], emb, con, torch.device("cpu"), torch.Generator().manual_seed(0))
    assert net.input is EMBEDDING_MODES.adapters[mode] and net.mode == mode
    state = net.state()
    assert "WyBy" not in state and state["Wy"].shape == (9, 3) and state["By"].shape == (9,)
    again = GRU4RecNetwork.from_state(
        {k: v.clone() for k, v in state.items()}, 9, [5, 3], emb, con, torch.device("cpu")
    )
    assert set(again.params) == set(net.params)
    assert all(torch.equal(again.params[k], net.params[k]) for k in net.params)
    with pytest.raises(KeyError):
        GRU4RecNetwork.from_state(
            {k: v for k, v in state.items() if k != "By"}, 9, [5, 3], emb, con, torch.device("cpu")
        )
