"""ML flavours: the library each flavour base adds to the FLOps runtime, and the base's key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

from packaging.utils import canonicalize_name

from flops_core.flops_tree import FlopsTree
from flops_core.image_names import normalize_registry

__all__ = ["FLAVORS", "Flavor", "base_image_key", "flavor_base_repository"]

#: Bumped when what a flavour base holds changes in a way its inputs do not show.
BASE_LAYOUT_VERSION = 4


@dataclass(frozen=True)
class Flavor:
    """One ML flavour.

    Parameters
    ----------
    name : str
        `sklearn`, `pytorch`, `tensorflow` or `keras`.
    libraries : tuple[str, ...]
        Requirements the flavour adds. A bare name is pinned as in FLOps' `dev` extra (so
        images and tests use the same release); the others are pinned here.
    extra_index_urls : tuple[str, ...]
        Package indexes to use besides PyPI, e.g. PyTorch's CPU-only wheels (on PyPI,
        `torch` for x86-64 pulls in gigabytes of CUDA libraries).
    """

    name: str
    libraries: tuple[str, ...]
    extra_index_urls: tuple[str, ...] = ()

    def requirements(self, tree: FlopsTree) -> tuple[str, ...]:
        """The FLOps runtime requirements plus this flavour's libraries, all pinned."""
        extra = tuple(tree.dev_pins.get(canonicalize_name(lib), lib) for lib in self.libraries)
        return (*tree.runtime_requirements, *extra)


FLAVORS: dict[str, Flavor] = {
    "sklearn": Flavor("sklearn", ("scikit-learn",)),
    "pytorch": Flavor(
        "pytorch", ("torch",), extra_index_urls=("https://download.pytorch.org/whl/cpu",)
    ),
    "tensorflow": Flavor("tensorflow", ("tensorflow==2.21.0",)),
    "keras": Flavor("keras", ("keras==3.15.1", "tensorflow==2.21.0")),
}


def flavor_base_repository(registry: str, flavor: str) -> str:
    """`<registry>/flops/base-<flavor>`, without a tag."""
    return f"{normalize_registry(registry)}/flops/base-{flavor}"


def base_image_key(
    *,
    base_image: str,
    requirements: Sequence[str],
    flavor: Flavor,
    containerfile: str,
) -> str:
    """A short hash of everything that decides a flavour base's content.

    Parameters
    ----------
    base_image : str
        The ref the flavour base starts FROM (a digest ref pins it exactly).
    requirements : Sequence[str]
        The runtime and flavour requirements as declared (order does not matter).
    flavor : Flavor
        The flavour (its name and indexes count).
    containerfile : str
        The text of the flavour base's Containerfile (`FLAVOR_CONTAINERFILE`); its comments
        do not count.
    """
    payload = {
        "layout": BASE_LAYOUT_VERSION,
        "base_image": base_image,
        "requirements": sorted(requirements),
        "flavor": flavor.name,
        "indexes": list(flavor.extra_index_urls),
        "containerfile": hashlib.sha256(_instructions(containerfile).encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _instructions(containerfile: str) -> str:
    """The Containerfile without comments and blank lines: editing its prose keeps the key."""
    lines = (line.rstrip() for line in containerfile.splitlines())
    return "\n".join(line for line in lines if line and not line.lstrip().startswith("#"))
