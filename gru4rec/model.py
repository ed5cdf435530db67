"""The GRU4Rec network: GRU layers over item embeddings, scored against output item embeddings.

Forward and backward are written out by hand rather than left to autograd. A GRU4Rec step is a
handful of small matrix products; on a CPU (and for small batches on a GPU) the time goes into
per-operation overhead, and autograd roughly doubles the operation count. Writing the backward
also lets the item matrices receive row gradients directly, which is what the sparse optimiser
needs. `tests/gru4rec/test_model.py` checks every gradient here against autograd.

Notation follows the papers (Hidasi et al. 2016, 2018):
  layer l:  a = x Wx + Bh             (three blocks side by side: candidate | reset | update)
            [r, z] = sigmoid(a[r,z] + h Wrz)
            c = tanh(a[c] + (r * h) Wh)    (reset applied before the product, as in the original)
            h' = (1 - z) * h + z * c
  output:   score(j) = <h_last, Wy[j]> + By[j]
Wy and By are stored side by side in one matrix `WyBy` (By is its last column): one row gather
serves both, and Adagrad is element-wise, so the update is the same as for two matrices. Outside
the network (model files) they are two matrices again: see `state()` and `from_state()`.

What the first layer gets as input depends on the embedding mode; each mode is a small input
adapter (gather the step's rows, look up the input, back-propagate into it):
  none      one-hot item: x Wx0 is a row of Wx0, which is an item matrix updated row by row
  separate  E[item], an embedding matrix of its own
  shared    Wy[item], the output embedding (its rows are gathered together with the scored ones)

The hidden state carried between steps is detached (no back-propagation through time), so the
backward pass never needs the gradient with respect to the previous hidden state.

Item matrices live in "row tables" of shape (n_items, k, dim): slot 0 is the parameter, the
other slots hold the optimiser's per-row state (Adagrad accumulator, momentum velocity). A
training step gathers each touched row once (parameter and state together), computes the scores
of the unique touched items only (sampled negatives often repeat), updates the gathered rows in
place and scatters them back once. These gathers and scatters are the bulk of a step's memory
traffic, so doing each once is what makes the step fast.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .params import EMBEDDING_MODES as MODE_NAMES


def _uniform(shape, fan_in, fan_out, generator, device):
    sigma = math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty(shape, device=device).uniform_(-sigma, sigma, generator=generator)


def _gate_blocks(n_in, n_hidden, n_blocks, generator, device):
    """A matrix of `n_blocks` gate matrices side by side, each initialised as its own matrix."""
    return torch.cat([_uniform((n_in, n_hidden), n_in, n_hidden, generator, device) for _ in range(n_blocks)], dim=1)


def _dropout_mask(shape, p, random, device):
    """Inverted dropout: keep with probability 1-p and scale by 1/(1-p), so inference needs no rescaling.
    `random`: the training's gru4rec.rng.CounterRandom."""
    return random.dropout_mask(shape, p, device)


def _scatter_rows(net, touched, d_used, mask=None):
    """Sum the gradients of every use of a row: (m, dim) per use, times `mask` if given -> (u, dim)
    per unique row."""
    return net.add_rows(d_used.new_zeros((len(touched.ids), d_used.shape[1])), touched.where, d_used, mask)


@dataclass
class TouchedRows:
    """The rows of one item matrix used by a step: unique ids, their gathered table rows, and
    for every use of the matrix in the step, the position of its item among the unique ids."""

    ids: torch.Tensor  # (u,) unique item indices
    rows: torch.Tensor  # (u, k, dim) gathered row-table entries; rows[:, 0] is the parameter
    where: torch.Tensor  # (m,) position in `ids` of each used item, in order of use
    # shared mode: the positions in `ids` of the scored items (the others were only inputs); None:
    # every row was scored
    scored: torch.Tensor | None = None

    def idle_last_col(self) -> torch.Tensor | None:
        """(u,) True for rows whose last column got no gradient and must not move: in shared mode, the
        output bias of items that were only inputs (no reference touches the bias of unscored items)."""
        if self.scored is None:
            return None
        return torch.ones(len(self.ids), dtype=torch.bool, device=self.ids.device).index_fill_(0, self.scored, False)


@dataclass
class LayerCache:
    """One GRU layer's forward values that its backward pass needs."""

    x: torch.Tensor  # layer input (b, n_in); for the one-hot first layer, its Wx0 rows
    h: torch.Tensor  # hidden state before the step (b, n)
    rz: torch.Tensor  # [r | z] gates (b, 2n)
    rh: torch.Tensor  # r * h
    c: torch.Tensor  # candidate state
    mask: torch.Tensor | None  # inverted-dropout mask on the layer output


@dataclass
class StepCache:
    """What the backward pass needs from one training step's forward pass."""

    b: int  # active slots
    out: TouchedRows  # rows of WyBy (shared mode: the input items' rows too)
    scored: torch.Tensor  # (n,) position in out.ids of each scored column
    inp: TouchedRows | None  # rows of E or Wx0 for the input items (separate, none)
    embed_mask: torch.Tensor | None  # inverted-dropout mask on the input embedding
    h_aug: torch.Tensor | None = None  # [last layer output | 1] (b, d+1)
    layers: list[LayerCache] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------
# input adapters: what the first GRU layer gets from the step's item ids
class OneHotInput:
    """mode 'none': a one-hot item vector. Its product with Wx0 is a row of Wx0, so Wx0 is an item
    matrix (gathered and updated row by row, like an embedding); there is no embedding dropout."""

    mode = "none"
    item_matrices = ("Wx0",)

    def embedding_size(self, layers, embedding):
        return 0  # the input is the n_items-wide one-hot vector

    def init_params(self, net, generator):
        pass

    def gather(self, net, X, Y, p_embed, random):
        """-> (rows of WyBy, scored positions, input rows, first-layer input, embedding mask)."""
        out = net.gather_rows("WyBy", Y)
        inp = net.gather_rows("Wx0", X)
        return out, out.where, inp, inp.rows[:, 0].index_select(0, inp.where), None

    def lookup(self, net, X):
        return net.params["Wx0"].index_select(0, X)

    def preactivation(self, net, x):
        return x + net.params["Bh0"]  # x is already x_onehot Wx0

    def backward(self, net, cache, d_a, dense, sparse, g_out):
        # a = x_onehot Wx0 + Bh0: the gradient of the used Wx0 rows is d_a, summed per item
        sparse["Wx0"] = (cache.inp, _scatter_rows(net, cache.inp, d_a))


class _EmbeddedInput:
    """The input is an embedding row x (dropped out in training); the first layer computes x Wx0."""

    item_matrices = ()

    def preactivation(self, net, x):
        return torch.addmm(net.params["Bh0"], x, net.params["Wx0"])

    def backward(self, net, cache, d_a, dense, sparse, g_out):
        # a = x Wx0 + Bh0  ->  dWx0 = x^T d_a,  dx = d_a Wx0^T; then through the dropout mask
        dense["Wx0"] = cache.layers[0].x.t() @ d_a
        d_x = d_a @ net.params["Wx0"].t()
        self._embedding_backward(net, cache, d_x, sparse, g_out)


class SeparateEmbedding(_EmbeddedInput):
    """mode 'separate': x = E[item], an embedding matrix of its own."""

    mode = "separate"
    item_matrices = ("E",)

    def embedding_size(self, layers, embedding):
        return embedding

    def init_params(self, net, generator):
        net.params["E"] = _uniform((net.n_items, net.embedding), net.n_items, net.embedding, generator, net.device)

    def gather(self, net, X, Y, p_embed, random):
        out = net.gather_rows("WyBy", Y)
        inp = net.gather_rows("E", X)
        x, mask = net.embed_rows(inp.rows[:, 0], inp.where, p_embed, random)
        return out, out.where, inp, x, mask

    def lookup(self, net, X):
        return net.params["E"].index_select(0, X)

    def _embedding_backward(self, net, cache, d_x, sparse, g_out):
        sparse["E"] = (cache.inp, _scatter_rows(net, cache.inp, d_x, cache.embed_mask))


class SharedEmbedding(_EmbeddedInput):
    """mode 'shared': x = Wy[item], the output embedding. One gather serves the input rows and the
    scored rows; the input gradient is added to the same rows' Wy part."""

    mode = "shared"

    def embedding_size(self, layers, embedding):
        return layers[-1]

    def init_params(self, net, generator):
        pass

    def gather(self, net, X, Y, p_embed, random):
        b = X.shape[0]
        out = net.gather_rows("WyBy", torch.cat([X, Y]))
        scored = out.where[b:]
        out.scored = scored
        x, mask = net.embed_rows(out.rows[:, 0, :-1], out.where[:b], p_embed, random)
        return out, scored, None, x, mask

    def lookup(self, net, X):
        return net.params["WyBy"].index_select(0, X)[:, :-1]

    def _embedding_backward(self, net, cache, d_x, sparse, g_out):
        net.add_rows(g_out[:, :-1], cache.out.where[: cache.b], d_x, cache.embed_mask)


class _Modes(tuple):
    """The embedding modes' names, in order (to the outside a plain tuple of str), and the
    registry of their input adapters: EMBEDDING_MODES.adapters[mode]."""

    def __new__(cls, *adapters):
        modes = super().__new__(cls, (a.mode for a in adapters))
        modes.adapters = {a.mode: a for a in adapters}
        return modes


EMBEDDING_MODES = _Modes(OneHotInput(), SeparateEmbedding(), SharedEmbedding())
assert EMBEDDING_MODES == MODE_NAMES  # the names the workflow checks a config against


def embedding_mode(embedding: int, constrained_embedding: bool) -> str:
    if constrained_embedding:
        return "shared"
    return "separate" if embedding else "none"


# ------------------------------------------------------------------------------------------------
class GRU4RecNetwork:
    """Parameters and the (hand-differentiated) computation of one GRU4Rec model."""

    def __init__(
        self,
        n_items: int,
        layers: list[int],
        embedding: int,
        constrained_embedding: bool,
        device: torch.device,
        generator: torch.Generator | None = None,
        init: bool = True,
    ):
        self.n_items = n_items
        self.layers = list(layers)
        self.input = EMBEDDING_MODES.adapters[embedding_mode(embedding, constrained_embedding)]
        self.mode = self.input.mode
        self.embedding = self.input.embedding_size(self.layers, embedding)
        self.device = device
        self.params: dict[str, torch.Tensor] = {}
        self.kernels = None  # the compiled step's kernels (gru4rec.compiled.NativeKernels) when training with them
        if init:
            self._init_params(generator)

    # ----------------------------------------------------------------------------------------
    # parameters
    def _init_params(self, g):
        dev, d = self.device, self.layers[-1]
        n_input = self.embedding or self.n_items  # one-hot input: n_items wide
        for i, n_hidden in enumerate(self.layers):
            n_in = n_input if i == 0 else self.layers[i - 1]
            self.params[f"Wx{i}"] = _gate_blocks(n_in, n_hidden, 3, g, dev)
            self.params[f"Wrz{i}"] = _gate_blocks(n_hidden, n_hidden, 2, g, dev)
            self.params[f"Wh{i}"] = _uniform((n_hidden, n_hidden), n_hidden, n_hidden, g, dev)
            self.params[f"Bh{i}"] = torch.zeros(3 * n_hidden, device=dev)
        self.input.init_params(self, g)
        wy = _uniform((self.n_items, d), self.n_items, d, g, dev)
        self.params["WyBy"] = torch.cat([wy, torch.zeros((self.n_items, 1), device=dev)], dim=1).contiguous()
        self.make_row_tables(0)

    def make_row_tables(self, n_state: int) -> dict[str, torch.Tensor]:
        """(Re)build the row tables of the item matrices with `n_state` zeroed state slots per row.

        params[name] becomes the view table[:, 0], so inference code sees a plain matrix.
        """
        self.tables = {}
        for name in self.sparse_names:
            p = self.params[name]
            table = torch.zeros((p.shape[0], 1 + n_state, p.shape[1]), device=p.device, dtype=p.dtype)
            table[:, 0] = p
            self.tables[name] = table
            self.params[name] = table[:, 0]
        return self.tables

    @property
    def sparse_names(self) -> list[str]:
        """Item matrices: updated only on the rows a step touches."""
        return ["WyBy", *self.input.item_matrices]

    @property
    def dense_names(self) -> list[str]:
        sparse = set(self.sparse_names)
        names = []
        for i in range(len(self.layers)):
            names += [n for n in (f"Wx{i}", f"Wrz{i}", f"Wh{i}", f"Bh{i}") if n not in sparse]
        return names

    def set_params(self, params: dict[str, torch.Tensor]):
        """Install loaded parameters (inference only: no optimiser state)."""
        self.params = {k: v.to(self.device) for k, v in params.items()}
        self.make_row_tables(0)

    def state(self) -> dict[str, torch.Tensor]:
        """The parameters under their model-file names: Wy and By as two matrices (views)."""
        out = {k: v for k, v in self.params.items() if k != "WyBy"}
        out["Wy"], out["By"] = self.params["WyBy"][:, :-1], self.params["WyBy"][:, -1]
        return out

    @classmethod
    def from_state(
        cls, tensors: dict[str, torch.Tensor], n_items: int, layers, embedding, constrained_embedding, device
    ) -> GRU4RecNetwork:
        """The inverse of state(). Raises KeyError or ValueError when names or shapes do not fit."""
        shapes = {
            k: tuple(v.shape)
            for k, v in cls(n_items, layers, embedding, constrained_embedding, torch.device("meta")).state().items()
        }
        if set(tensors) != set(shapes):
            raise KeyError(f"tensors {sorted(set(tensors) ^ set(shapes))}")
        wrong = [k for k, v in tensors.items() if tuple(v.shape) != shapes[k]]
        if wrong:
            raise ValueError(f"shape of {wrong[0]} is {tuple(tensors[wrong[0]].shape)}, expected {shapes[wrong[0]]}")
        params = {k: v.to(torch.float32).contiguous() for k, v in tensors.items() if k not in ("Wy", "By")}
        params["WyBy"] = torch.cat([tensors["Wy"], tensors["By"].reshape(-1, 1)], dim=1).to(torch.float32)
        net = cls(n_items, layers, embedding, constrained_embedding, device, init=False)
        net.set_params(params)
        return net

    # ----------------------------------------------------------------------------------------
    # forward
    def init_hidden(self, batch_size: int) -> list[torch.Tensor]:
        return [torch.zeros((batch_size, n), device=self.device) for n in self.layers]

    def gather_rows(self, name, ids_in_use) -> TouchedRows:
        """The rows a step uses. Eager: every slot of the row table (the optimiser updates the
        gathered rows and writes them back). Compiled (self.kernels set, see gru4rec.compiled): the
        parameter slot only, since the optimiser updates the rows where they are."""
        if self.kernels is not None:
            ids, where = self.kernels.unique(ids_in_use, self.n_items)
            return TouchedRows(ids=ids, rows=self.kernels.gather(self.tables[name], ids), where=where)
        ids, where = torch.unique(ids_in_use, return_inverse=True)
        return TouchedRows(ids=ids, rows=self.tables[name].index_select(0, ids), where=where)

    def embed_rows(self, rows, where, p, random):
        """The input embedding of a step: x = rows[where] (rows: the gathered rows, (u, dim)), times an
        inverted-dropout mask with probability p; returns (x, mask or None)."""
        if self.kernels is not None:  # the gather and the mask in one pass
            return self.kernels.embed_rows(rows, where, p, random)
        x = rows.index_select(0, where)
        if p <= 0:
            return x, None
        mask = _dropout_mask(x.shape, p, random, self.device)
        return x * mask, mask

    def add_rows(self, dst, where, d, mask=None):
        """dst[where[k]] += d[k] (times mask[k] if given) for every k: the gradient of embed_rows'
        rows, repeated uses summed. Returns dst."""
        if self.kernels is not None:
            self.kernels.add_rows(dst, where, d, mask)
            return dst
        return dst.index_add_(0, where, d if mask is None else d * mask)

    def _preactivation(self, i, x):
        """a = x Wx + Bh of layer i; the first layer's input comes from the input adapter."""
        if i == 0:
            return self.input.preactivation(self, x)
        return torch.addmm(self.params[f"Bh{i}"], x, self.params[f"Wx{i}"])

    def _gru(self, i, a, h):
        n, p = h.shape[1], self.params
        rz = torch.sigmoid(torch.addmm(a[:, n:], h, p[f"Wrz{i}"]))
        rh = rz[:, :n] * h
        c = torch.tanh(torch.addmm(a[:, :n], rh, p[f"Wh{i}"]))
        h_new = torch.addcmul(h, rz[:, n:], c - h)  # (1 - z) h + z c
        return h_new, rz, rh, c

    def _gru_train(self, i, a, h, p_hidden, random):
        """Layer i in training: (output times the dropout mask, rz, rh, c, mask or None)."""
        if self.kernels is not None:  # the same, with the element-wise passes compiled
            p = self.params
            return self.kernels.gru_forward(a, h, p[f"Wrz{i}"], p[f"Wh{i}"], p_hidden, random)
        h_new, rz, rh, c = self._gru(i, a, h)
        mask = None
        if p_hidden > 0:
            mask = _dropout_mask(h_new.shape, p_hidden, random, self.device)
            h_new = h_new * mask
        return h_new, rz, rh, c, mask

    def forward_hidden(self, X, H):
        """Inference: feed items X (b,) with hidden states H (updated in place); returns the last layer output."""
        x = self.input.lookup(self, X)
        for i in range(len(self.layers)):
            x = self._gru(i, self._preactivation(i, x), H[i])[0]
            H[i] = x
        return x

    def score_all(self, h, out=None):
        """Scores of every item for each row of the last layer output h: (b, n_items), into `out` if given.

        The bias rides in the product as a column of ones against WyBy as stored: one product over
        WyBy's contiguous rows, no copy of the weights and no extra pass to broadcast the bias into
        the output (scoring a whole catalogue is bound by reading WyBy once). One row, the
        streaming case, is a matrix-vector product, which reads WyBy faster than a 1-row mm.
        """
        W = self.params["WyBy"]
        if h.shape[0] == 1:
            s = torch.mv(W, F.pad(h[0], (0, 1), value=1.0), out=None if out is None else out.view(-1))
            return s.unsqueeze(0)
        return torch.mm(F.pad(h, (0, 1), value=1.0), W.t(), out=out)

    def forward_train(self, X, Y, H, p_embed, p_hidden, random):
        """Training forward pass of one step.

        X: input items (b,), Y: scored items (n,) whose first b are the targets, H: hidden states
        (replaced by the new, dropped-out states), random: the training's gru4rec.rng.CounterRandom
        (the dropout masks). Returns the scores of the unique scored items
        O_u (b, u) and the cache; the score matrix O (b, n) is `spread(O_u, cache)`.
        """
        b = X.shape[0]
        out, scored, inp, x, embed_mask = self.input.gather(self, X, Y, p_embed, random)
        cache = StepCache(b=b, out=out, scored=scored, inp=inp, embed_mask=embed_mask)
        for i in range(len(self.layers)):
            h = H[i]
            h_new, rz, rh, c, mask = self._gru_train(i, self._preactivation(i, x), h, p_hidden, random)
            cache.layers.append(LayerCache(x=x, h=h, rz=rz, rh=rh, c=c, mask=mask))
            H[i] = h_new  # the dropped-out output is also the state carried to the next step
            x = h_new
        cache.h_aug = torch.cat([x, torch.ones((b, 1), device=self.device)], dim=1)
        # scores of the unique touched items only: repeated samples share a column of O_u
        return cache.h_aug @ out.rows[:, 0].t(), cache

    def spread(self, O_u, cache: StepCache):
        """The score matrix O (b, n) of a step: column j holds the scores of scored item j."""
        return O_u.index_select(1, cache.scored)

    def gather_columns(self, dO, cache: StepCache):
        """dLoss/dO (b, n) -> dLoss/dO_u (b, u): the columns of the same item add up."""
        return dO.new_zeros((cache.b, len(cache.out.ids))).index_add_(1, cache.scored, dO)

    # ----------------------------------------------------------------------------------------
    # backward
    def backward(self, cache: StepCache, dO_u):
        """Gradients of the loss given dLoss/dO_u, the gradient of forward_train's unique-item scores.

        Returns (dense, sparse): dense maps parameter name -> gradient; sparse maps item-matrix
        name -> (TouchedRows, gradient of its unique rows), repeated uses already summed.
        """
        out = cache.out
        # O_u = h_aug W_u^T: dW_u = dO_u^T h_aug (Wy rows and By together) and dh = dO_u Wy_u
        g_out = dO_u.t() @ cache.h_aug
        dense, sparse = {}, {"WyBy": (out, g_out)}
        d_x = dO_u @ out.rows[:, 0, :-1]
        for i in reversed(range(len(self.layers))):
            d_a = self._gru_backward(i, cache.layers[i], d_x, dense)
            if i > 0:  # a = x Wx + Bh: dWx = x^T d_a, and the layer below gets dx = d_a Wx^T
                dense[f"Wx{i}"] = cache.layers[i].x.t() @ d_a
                d_x = d_a @ self.params[f"Wx{i}"].t()
        self.input.backward(self, cache, d_a, dense, sparse, g_out)
        return dense, sparse

    def _gru_backward(self, i, lc: LayerCache, d_out, dense):
        """From dLoss/d(layer output) to dLoss/da (a = x Wx + Bh), filling layer i's dense gradients.

        h' = h + z (c - h) with h detached:  dc = d_h' z,  dz = d_h' (c - h)
        c = tanh(a_c + (r h) Wh):            d(pre_c) = dc (1 - c^2) = d_ac;  d(r h) = d_ac Wh^T
        [r, z] = sigmoid(a_rz + h Wrz):      d(pre_rz) = [d(r h) h, dz] * s (1 - s) = d_rz
        dWh = (r h)^T d_ac,  dWrz = h^T d_rz,  dBh = column sums of d_a = [d_ac | d_rz].
        """
        if self.kernels is not None:  # the same, with the element-wise passes compiled
            d_a, dense[f"Wh{i}"], dense[f"Wrz{i}"], dense[f"Bh{i}"] = self.kernels.gru_backward(
                lc, d_out, self.params[f"Wh{i}"]
            )
            return d_a
        n = lc.h.shape[1]
        if lc.mask is not None:  # the output was multiplied by the dropout mask
            d_out = d_out * lc.mask
        z = lc.rz[:, n:]
        d_ac = d_out * z * (1 - lc.c * lc.c)
        d_rh = d_ac @ self.params[f"Wh{i}"].t()
        d_rz = torch.cat([d_rh * lc.h, d_out * (lc.c - lc.h)], dim=1) * lc.rz * (1 - lc.rz)
        d_a = torch.cat([d_ac, d_rz], dim=1)
        dense[f"Wh{i}"] = lc.rh.t() @ d_ac
        dense[f"Wrz{i}"] = lc.h.t() @ d_rz
        dense[f"Bh{i}"] = d_a.sum(0)
        return d_a


class HiddenState:
    """The hidden states of every GRU layer for the slots of a session-parallel pass, with the
    runner's two actions: keep (the batch shrinks) and reset (new sessions start)."""

    def __init__(self, net: GRU4RecNetwork, width: int):
        self.net = net
        self.H = net.init_hidden(width)

    def keep(self, idx: torch.Tensor):
        self.H = [h.index_select(0, idx) for h in self.H]

    def reset(self, new: torch.Tensor):
        new = new.unsqueeze(1)
        self.H = [h.masked_fill(new, 0.0) for h in self.H]


class SessionScorer(HiddenState):
    """The evaluator's per-pass scorer (see the model protocol): scores of every item as the next one.

    The scores are written into one buffer reused at every step (valid until the next step): a
    fresh (width x n_items) matrix per step costs the kernel a page fault per 4 kB page.
    """

    def __init__(self, net: GRU4RecNetwork, width: int):
        super().__init__(net, width)
        self.out = torch.empty((width, net.params["WyBy"].shape[0]), device=net.device)

    def step(self, items: torch.Tensor) -> torch.Tensor:
        return self.net.score_all(self.net.forward_hidden(items, self.H), out=self.out[: len(items)])

    def step_rows(self, items: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """As step(), but scores only the slots `rows` (all slots still advance): the evaluator's
        last-target protocol needs a few rows of most steps."""
        h = self.net.forward_hidden(items, self.H).index_select(0, rows)
        return self.net.score_all(h, out=self.out[: len(rows)])
