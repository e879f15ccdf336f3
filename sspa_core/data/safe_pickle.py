"""A restricted unpickler for the ``dataset_all.pkl`` files of Rethinking_of_PAR.

A pickle can run arbitrary code when it is loaded, so a user's pickle is never given to
``pickle.load``. This unpickler only rebuilds numpy arrays, numpy dtypes and scalars, builtin
containers and ``range``; ``easydict.EasyDict`` (the container those files use) becomes
:class:`AttrDict` without importing easydict. Anything else is refused.
"""

from __future__ import annotations

import codecs
import io
import pickle
import re
from pathlib import Path

import numpy as np
from numpy._core import multiarray, numeric


class AttrDict(dict):
    """A dict whose keys are also attributes (stands in for ``easydict.EasyDict``)."""

    def __getattr__(self, key: str):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "range"): range,
    ("__builtin__", "xrange"): range,  # protocol 2 names
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("_codecs", "encode"): codecs.encode,  # bytes in protocol 2 pickles
    ("collections", "OrderedDict"): dict,
    ("easydict", "EasyDict"): AttrDict,
}
for _module in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_module, "_reconstruct")] = multiarray._reconstruct
    _ALLOWED[(_module, "scalar")] = multiarray.scalar
for _module in ("numpy.core.numeric", "numpy._core.numeric"):
    _ALLOWED[(_module, "_frombuffer")] = numeric._frombuffer


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in an allow-list (see the module docstring)."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: only numpy arrays and plain containers are allowed"
            ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused a persistent id: not allowed in a data file")


def load_restricted(path: str | Path) -> object:
    """Load the pickle at ``path`` with :class:`RestrictedUnpickler`; ValueError naming the
    file if it holds anything beyond numpy arrays and plain containers, or is not a pickle."""
    path = Path(path)
    try:
        return RestrictedUnpickler(io.BytesIO(path.read_bytes())).load()
    except pickle.UnpicklingError as err:
        raise ValueError(f"untrusted pickle {path}: {err}") from err
    except (EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"{path} is not a readable pickle of arrays and containers ({err})") from err


def refused_by_torch(err: pickle.UnpicklingError) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in place of torch's message (which
    suggests the unsafe ``weights_only=False``): the global it would have loaded, if torch names one."""
    found = re.search(r"GLOBAL (\S+)", str(err))
    if found is not None:
        return f"it would load {found.group(1)}, which could run code"
    return "not a pickle of tensors and plain containers (anything else could run code when loaded)"
