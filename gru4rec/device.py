"""Choosing the torch device from a user string."""

import torch

from .errors import ParameterError


def resolve_device(device="auto") -> torch.device:
    """Map 'auto', 'cpu', 'cuda' or 'cuda:N' (or a torch.device) to a usable device.

    'auto' picks the first CUDA device when one is available, else the CPU.
    """
    if isinstance(device, torch.device):
        spec = str(device)
    else:
        spec = str(device).strip().lower()
    if spec == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if spec == "cuda" or spec.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ParameterError(f"device '{device}' was requested but CUDA is not available (use 'cpu' or 'auto')")
        dev = torch.device("cuda:0" if spec == "cuda" else spec)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ParameterError(
                f"device '{device}' does not exist: {torch.cuda.device_count()} CUDA device(s) are visible"
            )
        return dev
    raise ParameterError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got '{device}'")
