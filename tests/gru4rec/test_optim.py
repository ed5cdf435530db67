"""The sparse Adagrad-with-momentum update against a dense NumPy computation on the touched rows."""

import numpy as np
import pytest
import torch

from gru4rec.model import GRU4RecNetwork
from gru4rec.optim import AdagradM


def reference_step(p, acc, vel, g, lr, m, eps=1e-6):
    acc = acc + g * g
    step = lr * g / np.sqrt(acc + eps)
    if m > 0:
        vel = m * vel - step
        return p + vel, acc, vel
    return p - step, acc, vel


@pytest.mark.parametrize("momentum", [0.0, 0.4])
def test_sparse_rows_match_dense_computation_and_untouched_rows_stay(momentum):
    rng = np.random.default_rng(0)
    lr = 0.1
    net = GRU4RecNetwork(8, [3], 0, True, torch.device("cpu"), torch.Generator().manual_seed(0))
    net.params = {k: v.double() for k, v in net.params.items()}
    net.make_row_tables(0)
    W0 = net.params["WyBy"].numpy().copy()
    D0 = net.params["Wh0"].numpy().copy()
    opt = AdagradM(net, learning_rate=lr, momentum=momentum)
    p_ref, acc_ref, vel_ref = W0.copy(), np.zeros_like(W0), np.zeros_like(W0)
    pd_ref, accd_ref, veld_ref = D0.copy(), np.zeros_like(D0), np.zeros_like(D0)
    # step 1 uses row 1 twice and row 4 once; step 2 leaves row 4 out: momentum must NOT move it
    for used in (np.array([1, 4, 1, 6]), np.array([1, 2])):
        per_use = rng.normal(size=(len(used), W0.shape[1]))
        G = np.zeros_like(W0)
        np.add.at(G, used, per_use)
        touched = net.gather_rows("WyBy", torch.tensor(used))
        g_unique = torch.tensor(G[touched.ids.numpy()])
        gd = rng.normal(size=D0.shape)
        rows = np.unique(used)
        p_ref[rows], acc_ref[rows], vel_ref[rows] = reference_step(
            p_ref[rows], acc_ref[rows], vel_ref[rows], G[rows], lr, momentum
        )
        pd_ref, accd_ref, veld_ref = reference_step(pd_ref, accd_ref, veld_ref, gd, lr, momentum)
        opt.step({"Wh0": torch.tensor(gd)}, {"WyBy": (touched, g_unique)})
        np.testing.assert_allclose(net.params["WyBy"].numpy(), p_ref, rtol=1e-12)
        np.testing.assert_allclose(opt.tables["WyBy"][:, 1].numpy(), acc_ref, rtol=1e-12)
        np.testing.assert_allclose(net.params["Wh0"].numpy(), pd_ref, rtol=1e-12)
        if momentum:
            np.testing.assert_allclose(opt.tables["WyBy"][:, 2].numpy(), vel_ref, rtol=1e-12)
    untouched = [0, 3, 5, 7]
    np.testing.assert_array_equal(net.params["WyBy"].numpy()[untouched], W0[untouched])
    assert not opt.tables["WyBy"][untouched, 1:].any()


def test_shared_embedding_moves_only_the_output_bias_of_scored_items():
    # shared mode gathers the input items' WyBy rows together with the scored ones; an item that is
    # only an input gets a gradient on its embedding (Wy) but none on its output bias, and with
    # momentum its bias must not keep moving (neither reference touches By of unscored items)
    from gru4rec.losses import Loss

    net = GRU4RecNetwork(6, [3], 0, True, torch.device("cpu"), torch.Generator().manual_seed(0))
    opt = AdagradM(net, learning_rate=0.1, momentum=0.5)
    loss = Loss("cross-entropy", "softmax")
    H = net.init_hidden(2)

    def step(X, Y):
        O_u, cache = net.forward_train(torch.tensor(X), torch.tensor(Y), H, 0.0, 0.0, None)
        _, dO = loss(net.spread(O_u, cache), None, 0.5)
        opt.step(*net.backward(cache, net.gather_columns(dO, cache)))

    step([0, 1], [4, 2])  # item 4 is scored: its bias gets a velocity
    table = opt.tables["WyBy"]
    bias_before, wy_before = table[4, :, -1].clone(), net.params["WyBy"][4, :-1].clone()
    step([4, 1], [2, 3])  # item 4 is only an input now
    assert torch.equal(table[4, :, -1], bias_before)  # parameter, accumulator and velocity
    assert not torch.equal(net.params["WyBy"][4, :-1], wy_before)
