"""Loading the official PyTorch port (hidasib/GRU4Rec_PyTorch_Official) from a user's checkout,
for the benchmarks that time it beside us in the same run."""

from __future__ import annotations

import sys

import pandas as pd
import torch


class _Torch:
    """torch, except that torch.tensor accepts the pandas Series the port passes it (pandas 3 no
    longer converts them)."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def tensor(x, *args, **kwargs):
        return torch.tensor(x.to_numpy() if isinstance(x, pd.Series) else x, *args, **kwargs)


def import_port(repo):
    """The port's (gru4rec_pytorch, evaluation) modules from the checkout `repo`."""
    sys.path.insert(0, str(repo))
    import evaluation
    import gru4rec_pytorch

    gru4rec_pytorch.torch = evaluation.torch = _Torch()
    return gru4rec_pytorch, evaluation
