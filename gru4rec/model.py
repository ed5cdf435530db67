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
serves both, and Adagrad is element-wise, so the update is the same as for two matrices.

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

EMBEDDING_MODES = ("none", "separate", "shared")


def embedding_mode(embedding: int, constrained_embedding: bool) -> str:
    if constrained_embedding:
        return "shared"
    return "separate" if embedding else "none"


def _uniform(shape, fan_in, fan_out, generator, device):
    sigma = math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty(shape, device=device).uniform_(-sigma, sigma, generator=generator)


def _gate_blocks(n_in, n_hidden, n_blocks, generator, device):
    """A matrix of `n_blocks` gate matrices side by side, each initialised as its own matrix."""
    return torch.cat([_uniform((n_in, n_hidden), n_in, n_hidden, generator, device) for _ in range(n_blocks)], dim=1)


@dataclass
class TouchedRows:
    """The rows of one item matrix used by a step: unique ids, their gathered table rows, and
    for every use of the matrix in the step, the position of its item among the unique ids."""
    ids: torch.Tensor       # (u,) unique item indices
    rows: torch.Tensor      # (u, k, dim) gathered row-table entries; rows[:, 0] is the parameter
    where: torch.Tensor     # (m,) position in `ids` of each used item, in order of use
    # (u,) True for rows whose last column got no gradient and must not move: in shared mode, the
    # output bias of items that were only inputs (no reference touches the bias of unscored items)
    idle_last_col: torch.Tensor | None = None


@dataclass
class StepCache:
    """What the backward pass needs from one training step's forward pass."""
    b: int                          # active slots
    out: TouchedRows                # rows of WyBy (for 'shared': the input items first, then Y)
    inp: TouchedRows | None         # rows of E or Wx0 for the input items ('separate', 'none')
    h_aug: torch.Tensor             # [last layer output | 1] (b, d+1)
    embed_mask: torch.Tensor | None  # inverted-dropout mask on the input embedding
    layers: list = field(default_factory=list)  # per layer: (x, h, rz, rh, c, mask)


class GRU4RecNetwork:
    """Parameters and the (hand-differentiated) computation of one GRU4Rec model."""

    def __init__(self, n_items: int, layers: list[int], embedding: int, constrained_embedding: bool,
                 device: torch.device, generator: torch.Generator | None = None, init: bool = True):
        self.n_items = n_items
        self.layers = list(layers)
        self.mode = embedding_mode(embedding, constrained_embedding)
        self.embedding = layers[-1] if self.mode == "shared" else (embedding if self.mode == "separate" else 0)
        self.device = device
        # In 'none' mode the first layer's input is a one-hot item vector: its input weights are an
        # item matrix updated row by row (like an embedding), the other layers are dense.
        self.first_dense_layer = 1 if self.mode == "none" else 0
        self.params: dict[str, torch.Tensor] = {}
        if init:
            self._init_params(generator)

    # ----------------------------------------------------------------------------------------
    # parameters
    def _init_params(self, g):
        dev, d = self.device, self.layers[-1]
        n_input = {"none": self.n_items, "separate": self.embedding, "shared": d}[self.mode]
        for i, n_hidden in enumerate(self.layers):
            n_in = n_input if i == 0 else self.layers[i - 1]
            self.params[f"Wx{i}"] = _gate_blocks(n_in, n_hidden, 3, g, dev)
            self.params[f"Wrz{i}"] = _gate_blocks(n_hidden, n_hidden, 2, g, dev)
            self.params[f"Wh{i}"] = _uniform((n_hidden, n_hidden), n_hidden, n_hidden, g, dev)
            self.params[f"Bh{i}"] = torch.zeros(3 * n_hidden, device=dev)
        if self.mode == "separate":
            self.params["E"] = _uniform((self.n_items, self.embedding), self.n_items, self.embedding, g, dev)
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
        names = ["WyBy"]
        if self.mode == "separate":
            names.append("E")
        if self.mode == "none":
            names.append("Wx0")
        return names

    @property
    def dense_names(self) -> list[str]:
        names = []
        for i in range(len(self.layers)):
            if i >= self.first_dense_layer:
                names.append(f"Wx{i}")
            names += [f"Wrz{i}", f"Wh{i}", f"Bh{i}"]
        return names

    def set_params(self, params: dict[str, torch.Tensor]):
        """Install loaded parameters (inference only: no optimiser state)."""
        self.params = {k: v.to(self.device) for k, v in params.items()}
        self.make_row_tables(0)

    # ----------------------------------------------------------------------------------------
    # forward
    def init_hidden(self, batch_size: int) -> list[torch.Tensor]:
        return [torch.zeros((batch_size, n), device=self.device) for n in self.layers]

    def _input(self, X, rows_for_input=None):
        """Input of the first GRU layer, or (for 'none' mode) its input projection rows."""
        p = self.params
        if self.mode == "shared":
            return rows_for_input if rows_for_input is not None else p["WyBy"].index_select(0, X)[:, :-1]
        if self.mode == "separate":
            return p["E"].index_select(0, X)
        return p["Wx0"].index_select(0, X)  # one-hot input times Wx0 is a row lookup

    @staticmethod
    def _gru(a, h, Wrz, Wh):
        n = h.shape[1]
        rz = torch.sigmoid(torch.addmm(a[:, n:], h, Wrz))
        rh = rz[:, :n] * h
        c = torch.tanh(torch.addmm(a[:, :n], rh, Wh))
        z = rz[:, n:]
        h_new = torch.addcmul(h, z, c - h)
        return h_new, rz, rh, c

    def forward_hidden(self, X, H):
        """Inference: feed items X (b,) with hidden states H (updated in place); returns the last layer output."""
        p = self.params
        x = self._input(X)
        for i in range(len(self.layers)):
            if i == 0 and self.mode == "none":
                a = x + p["Bh0"]
            else:
                a = torch.addmm(p[f"Bh{i}"], x, p[f"Wx{i}"])
            x, _, _, _ = self._gru(a, H[i], p[f"Wrz{i}"], p[f"Wh{i}"])
            H[i] = x
        return x

    def score_all(self, h):
        """Scores of every item for each row of the last layer output h: (b, n_items)."""
        W = self.params["WyBy"]
        return torch.addmm(W[:, -1], h, W[:, :-1].t())

    def _gather(self, name, ids_in_use):
        ids, where = torch.unique(ids_in_use, return_inverse=True)
        return TouchedRows(ids=ids, rows=self.tables[name].index_select(0, ids), where=where)

    def forward_train(self, X, Y, H, p_embed, p_hidden, generator):
        """Training forward pass of one step.

        X: input items (b,), Y: scored items (n,) whose first b are the targets, H: hidden states
        (replaced by the new, dropped-out states). Returns the score matrix O (b, n) and the cache.
        """
        p = self.params
        b = X.shape[0]
        if self.mode == "shared":
            out = self._gather("WyBy", torch.cat([X, Y]))  # one gather for input and scored rows
            out.idle_last_col = torch.ones(len(out.ids), dtype=torch.bool, device=self.device).index_fill_(
                0, out.where[b:], False)
            x = out.rows[:, 0, :-1].index_select(0, out.where[:b])
            inp = None
        else:
            out = self._gather("WyBy", Y)
            inp = self._gather("E" if self.mode == "separate" else "Wx0", X)
            x = inp.rows[:, 0].index_select(0, inp.where)
        cache = StepCache(b=b, out=out, inp=inp, h_aug=None, embed_mask=None)
        if self.mode != "none" and p_embed > 0:
            cache.embed_mask = _dropout_mask(x.shape, p_embed, generator, self.device)
            x = x * cache.embed_mask
        for i in range(len(self.layers)):
            h = H[i]
            if i == 0 and self.mode == "none":
                a = x + p["Bh0"]
            else:
                a = torch.addmm(p[f"Bh{i}"], x, p[f"Wx{i}"])
            h_new, rz, rh, c = self._gru(a, h, p[f"Wrz{i}"], p[f"Wh{i}"])
            mask = None
            if p_hidden > 0:
                mask = _dropout_mask(h_new.shape, p_hidden, generator, self.device)
                h_new = h_new * mask
            cache.layers.append((x, h, rz, rh, c, mask))
            H[i] = h_new  # the dropped-out output is also the state carried to the next step
            x = h_new
        cache.h_aug = torch.cat([x, torch.ones((b, 1), device=self.device)], dim=1)
        # scores of the unique scored items, then spread to the n columns (repeats share a column)
        O = (cache.h_aug @ out.rows[:, 0].t()).index_select(1, self._scored(cache))
        return O, cache

    def _scored(self, cache):
        return cache.out.where[cache.b:] if self.mode == "shared" else cache.out.where

    def backward(self, cache: StepCache, dO):
        """Gradients of the loss given dLoss/dO.

        Returns (dense, sparse): dense maps parameter name -> gradient; sparse maps item-matrix
        name -> (TouchedRows, gradient of its unique rows), repeated uses already summed.
        """
        p = self.params
        out = cache.out
        W = out.rows[:, 0]
        dO_u = dO.new_zeros((cache.b, len(out.ids))).index_add_(1, self._scored(cache), dO)
        g_out = dO_u.t() @ cache.h_aug
        dense, sparse = {}, {"WyBy": (out, g_out)}
        d_x = dO_u @ W[:, :-1]
        for i in reversed(range(len(self.layers))):
            x, h, rz, rh, c, mask = cache.layers[i]
            n = h.shape[1]
            if mask is not None:
                d_x = d_x * mask
            z = rz[:, n:]
            d_ac = d_x * z * (1 - c * c)                     # through c = tanh(.)
            d_rh = d_ac @ p[f"Wh{i}"].t()
            d_rz = torch.cat([d_rh * h, d_x * (c - h)], dim=1) * rz * (1 - rz)
            d_a = torch.cat([d_ac, d_rz], dim=1)
            dense[f"Wh{i}"] = rh.t() @ d_ac
            dense[f"Wrz{i}"] = h.t() @ d_rz
            dense[f"Bh{i}"] = d_a.sum(0)
            if i == 0 and self.mode == "none":
                inp = cache.inp
                sparse["Wx0"] = (inp, d_a.new_zeros((len(inp.ids), d_a.shape[1])).index_add_(0, inp.where, d_a))
                return dense, sparse
            dense[f"Wx{i}"] = x.t() @ d_a
            if i > 0:
                d_x = d_a @ p[f"Wx{i}"].t()
        d_x0 = d_a @ p["Wx0"].t()
        if cache.embed_mask is not None:
            d_x0 = d_x0 * cache.embed_mask
        if self.mode == "separate":
            inp = cache.inp
            sparse["E"] = (inp, d_x0.new_zeros((len(inp.ids), d_x0.shape[1])).index_add_(0, inp.where, d_x0))
        else:  # shared: the input rows are the first d columns of the same WyBy rows
            g_out[:, :-1].index_add_(0, out.where[:cache.b], d_x0)
        return dense, sparse


def _dropout_mask(shape, p, generator, device):
    """Inverted dropout: keep with probability 1-p and scale by 1/(1-p), so inference needs no rescaling."""
    keep = 1.0 - p
    return (torch.rand(shape, device=device, generator=generator) < keep).to(torch.float32).div_(keep)
