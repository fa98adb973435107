"""PDEformer checkpoint files: written by training, read back with torch's weights-only loader.

A checkpoint is a dict of tensors and plain data (dicts, lists, tuples, str, int, float, bool, None):
``model_config`` (the `PDEformerConfig` as a dict), ``model`` (the state dict), and training
metadata. That is all ``torch.load(..., weights_only=True)`` accepts, so a file from elsewhere that
smuggles in a pickled object whose unpickling would run code is refused before anything runs.
"""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import torch

# lines of torch's weights-only error that say nothing about this file
_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation", "In PyTorch")


class CheckpointError(ValueError):
    """A file that is not a loadable PDEformer checkpoint; the message is one line naming the file."""


def save_checkpoint(path: Path, model: torch.nn.Module, extra: dict) -> None:
    """Write ``model`` (its config and weights) and the plain-data ``extra`` to ``path`` atomically."""
    tmp = path.with_suffix(".tmp")
    torch.save({"model_config": model.config.to_dict(), "model": model.state_dict(), **extra}, tmp)
    tmp.replace(path)  # atomic: a crash or Ctrl-C never leaves a half-written checkpoint


def _reason(e: BaseException) -> str:
    """The informative line of a loader error, e.g. 'Trying to load unsupported GLOBAL posix.system ...'."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(_BOILERPLATE)] or lines or [type(e).__name__]
    line = lines[0].removeprefix("WeightsUnpickler error:").strip()
    line = re.sub(r"^\[enforce fail at [^\]]*\]\s*\.?\s*", "", line) or type(e).__name__  # torch's C++ prefix
    return line if len(line) <= 160 else line[:157] + "..."


def read_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> dict:
    """The dict stored in a checkpoint file, loaded with ``weights_only=True``.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist.
    CheckpointError
        The file is not a torch file of tensors and plain data (a crafted pickle, an .npz, a
        truncated file), or it lacks ``model`` / ``model_config``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found")
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory, not a checkpoint file")
    try:
        with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": the error below says enough
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} is not a PDEformer checkpoint: refused by the weights-only loader, which reads "
            f"only tensors and plain data and never runs code from a file ({_reason(e)})"
        ) from None
    except Exception as e:  # torch raises RuntimeError, EOFError, OSError... for files it cannot read
        reason = _reason(e)
        raise CheckpointError(f"{path} is not a PDEformer checkpoint (not a torch file: {reason})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_config" not in ckpt:
        raise CheckpointError(f"{path} is not a PDEformer checkpoint (missing 'model' or 'model_config')")
    return ckpt
