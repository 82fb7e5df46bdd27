"""Data-tag namespaces: the data-server tag under which a customer's data tag is stored and read.

Users name data by short tags (`digits`) in `POST /api/flops/mocks` and in a project's
`data_tags`; the data servers, wire-compatible with the original FLOps data server, know only
flat tags (the part of a dataset name `<tag>.<id>.parquet` before the first `.`). The manager
maps every tag a user writes to a stored tag, both when it pushes mock data and when it tells
learners what to load, so that a customer's projects read only that customer's data:

- `TAG` of customer `C` is stored as `<namespace of C>:TAG`;
- `shared:TAG` is stored as plain `TAG`: the operator's shared data, which only the admin
  pushes through the API (and anyone with access to a node's data server by hand, e.g.
  `flops-data-server push --tag TAG` or the original FLOps mock provider), and which every
  project may read by naming it `shared:TAG` explicitly.

`TAG` is 1-128 letters, digits, `_` or `-`. The namespace of a customer id is the id with every
character other than letters, digits, `_`, `-` and `@` written as `%XX` (its UTF-8 bytes), so
`acme.eu` is `acme%2Eeu`; an id whose namespace would be longer than 64 characters is cut to
its first 40 and followed by `~` and 32 hex digits of its SHA-256. A namespace therefore holds
no `:`, `.`, `/` or `,`, and stored tags cannot be forged: a stored customer tag has exactly one
`:`, the part before it names exactly one customer, and a shared tag has none.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from flops_core.errors import PermanentError

__all__ = [
    "DATA_TAG_MAX_LENGTH",
    "DATA_TAG_PATTERN",
    "SHARED_PREFIX",
    "DataTagError",
    "check_data_tag",
    "customer_data_tag",
    "customer_namespace",
    "is_shared",
    "stored_data_tag",
    "stored_data_tags",
]

#: How a user names the admin's shared data: `shared:digits`.
SHARED_PREFIX = "shared:"
#: A tag as users write it: `TAG` or `shared:TAG` (for the request schemas).
DATA_TAG_PATTERN = r"^(shared:)?[A-Za-z0-9_-]{1,128}$"
#: The longest tag users may write (`shared:` and 128 characters).
DATA_TAG_MAX_LENGTH = len(SHARED_PREFIX) + 128

_SEPARATOR = ":"
_DATA_TAG = re.compile(DATA_TAG_PATTERN)
_NAMESPACE_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-@")
_MAX_NAMESPACE = 64
_HASHED_PREFIX = 40


class DataTagError(PermanentError, ValueError):
    """Raised when a data tag is not `TAG` or `shared:TAG`, or a customer id is empty."""


def check_data_tag(tag: str) -> str:
    """Return `tag` if users may write it, else raise `DataTagError` saying what is allowed.

    Parameters
    ----------
    tag : str
        `TAG` (the owner's own data) or `shared:TAG` (the admin's shared data), where `TAG` is
        1-128 letters, digits, `_` or `-`.
    """
    if not isinstance(tag, str) or not _DATA_TAG.fullmatch(tag):
        raise DataTagError(
            f"data tag {tag!r} must be 1-128 letters, digits, '_' or '-', optionally after "
            f"{SHARED_PREFIX!r} to name the admin's shared data"
        )
    return tag


def is_shared(tag: str) -> bool:
    """Whether a (checked) tag names the admin's shared data, `shared:TAG`."""
    return tag.startswith(SHARED_PREFIX)


def customer_namespace(customer_id: str) -> str:
    """Return the namespace of `customer_id`'s data tags on the data servers.

    Distinct customer ids give distinct namespaces, and no namespace holds `:`, `.`, `/`, `\\`
    or `,` (see the module docstring).
    """
    if not customer_id:
        raise DataTagError("a data tag's owner must have a non-empty customer id")
    encoded = "".join(
        char if char in _NAMESPACE_SAFE else "".join(f"%{b:02X}" for b in char.encode())
        for char in customer_id
    )
    if len(encoded) <= _MAX_NAMESPACE:
        return encoded
    digest = hashlib.sha256(customer_id.encode()).hexdigest()[:32]
    return f"{encoded[:_HASHED_PREFIX]}~{digest}"


def stored_data_tag(customer_id: str, tag: str) -> str:
    """Return the data-server tag that `tag`, written by or for `customer_id`, stands for.

    Parameters
    ----------
    customer_id : str
        The owner of the project or mock-data job (not necessarily the caller: the admin may
        act for a customer).
    tag : str
        The tag as the user wrote it: `TAG` or `shared:TAG`.

    Raises
    ------
    DataTagError
        `tag` is malformed or `customer_id` empty.
    """
    check_data_tag(tag)
    if is_shared(tag):
        return tag.removeprefix(SHARED_PREFIX)
    return f"{customer_namespace(customer_id)}{_SEPARATOR}{tag}"


def stored_data_tags(customer_id: str, tags: Sequence[str]) -> list[str]:
    """Return the data-server tags a project of `customer_id` reads for its `data_tags`."""
    if isinstance(tags, str):
        raise DataTagError(f"data tags must be a list of tags, not {tags!r}")
    return [stored_data_tag(customer_id, tag) for tag in tags]


def customer_data_tag(customer_id: str, stored_tag: str) -> str | None:
    """Return the tag as `customer_id` writes it for a data-server tag, or None if not theirs.

    The inverse of `stored_data_tag`: the customer's own `<namespace>:TAG` is `TAG`, a shared
    `TAG` is `shared:TAG`; another customer's tag, and a stored tag no user could name (pushed
    by hand under a name outside the pattern), are None.

    Parameters
    ----------
    customer_id : str
        Whose view it is.
    stored_tag : str
        The tag as a data server holds it.
    """
    namespace, separator, tag = stored_tag.rpartition(_SEPARATOR)
    if not separator:
        written = f"{SHARED_PREFIX}{stored_tag}"
    elif namespace == customer_namespace(customer_id):
        written = tag
    else:
        return None
    return written if _DATA_TAG.fullmatch(written) else None
