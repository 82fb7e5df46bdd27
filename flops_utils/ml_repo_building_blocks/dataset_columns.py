"""`dataset["column"]` as repos written for the original FLOps expect it: the formatted column.

The original FLOps learner ran ML repos with `datasets` 2.x (its image installed
`flwr_datasets==0.1.0`, which requires `datasets>=2.14.3,<3`). There, `dataset["image"]`
returned the whole column in the dataset's format: after `set_format("numpy")` one NumPy array
(stacked when the rows' shapes agree, so `Image` columns decode to an `(n, h, w)` array), after
`set_format("torch")` a tensor, after `with_transform(fn)` the transformed column, and with the
default (python) format a list. Since `datasets` 3, `dataset["image"]` is a lazy `Column` for
every format but arrow, pandas and polars, and `dataset["image"].reshape(...)` raises
`AttributeError`. FLOps ships today's `datasets`, so it puts the 2.x answer back.

Design: `enable_formatted_columns()` replaces `datasets.Dataset.__getitem__` for string keys
with the library's own `Dataset._getitem`, which still computes exactly the 2.x value; row,
slice and index-list keys are untouched. It is installed for every `Dataset` of the process,
not only for the one `load_dataset()` returns, for two reasons:

- `datasets` builds plain `Dataset` objects in its transforms, so a subclass is lost at once
  (`select`, `train_test_split`, `shuffle`); a marker carried in `Dataset.info` survives most
  transforms but was measured to be lost by `map(num_proc=2)`, by `concatenate_datasets` with a
  dataset from elsewhere and by `save_to_disk`/`load_from_disk`. In the original learner every
  `Dataset` had 2.x columns, also those a repo builds itself or loads from the hub.
- The learner process exists to run one repo, so "every dataset in the process" is the same
  set as "every dataset the repo touches".

The FLOps learner enables it before it imports the repo's code, and `load_dataset()` enables it
too (for local experiments). Code written for today's `datasets` keeps working, because the
2.x values are sequences too: iterating, `len`, integer and slice indexing and `list(column)`
give the same values as a `Column`. What differs (documented in the README):

- `==` on an array column compares element-wise (NumPy's rule, as in 2.x), where a `Column`
  compared with a list returns one bool; the python format's list still returns one bool.
- Nested access `dataset["meta"]["source"]` is not available (2.x did not have it either);
  use `datasets.Column(dataset, "meta")["source"]`, or `dataset.flatten()["meta.source"]`.
- The column is materialised at once (as in 2.x), not read lazily row by row; for a column
  too large for memory, iterate `datasets.Column(dataset, name)` or the dataset's rows.
"""

from collections.abc import Callable
from typing import Any

import datasets

__all__ = [
    "disable_formatted_columns",
    "enable_formatted_columns",
    "formatted_columns_enabled",
]

_GetItem = Callable[[datasets.Dataset, Any], Any]

#: `Dataset.__getitem__` as the installed `datasets` release defines it.
_library_getitem: _GetItem = datasets.Dataset.__getitem__


def _formatted_getitem(self: datasets.Dataset, key: Any) -> Any:
    """`Dataset.__getitem__` that answers a column name with the formatted column (2.x)."""
    if isinstance(key, str):
        return self._getitem(key)
    return _library_getitem(self, key)


def enable_formatted_columns() -> None:
    """Make `dataset["name"]` return the formatted column, as `datasets` 2.x did.

    Applies to every `datasets.Dataset` of this process; calling it again changes nothing.
    """
    setattr(datasets.Dataset, "__getitem__", _formatted_getitem)  # noqa: B010


def disable_formatted_columns() -> None:
    """Give `dataset["name"]` back the installed `datasets` release's own behaviour."""
    setattr(datasets.Dataset, "__getitem__", _library_getitem)  # noqa: B010


def formatted_columns_enabled() -> bool:
    """Return whether `dataset["name"]` currently returns the formatted column."""
    return datasets.Dataset.__dict__.get("__getitem__") is _formatted_getitem
