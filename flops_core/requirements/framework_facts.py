"""Facts about ML frameworks that their metadata does not state: NumPy ABI and companions.

NumPy ABI. Extension modules compiled against NumPy 1.x fail to import (or fail at the
first call into NumPy, as `torch.from_numpy` does) under NumPy 2, and many releases built
before NumPy 2.0 (June 2024) do not say so in their `Requires-Dist`: torch 2.1.1 declares
no numpy requirement at all, pandas 2.1 and scikit-learn 1.4.1 only a lower bound. Each
entry below names the first release built against NumPy 2 (from the projects' release
notes and NumPy's ecosystem tracking issue numpy/numpy#26191); an environment holding an
older release gets `numpy<2` as an extra constraint. Releases that already declare an
upper bound (tensorflow<2.18, scipy<1.13) are listed anyway: the constraint is then free.

Companions. Packages released in lockstep with a framework and pinned to one of its
releases (torchvision 0.16.1 requires torch==2.1.1; tensorflow 2.14 requires
keras<2.15,>=2.14). When a framework pin is relaxed to another release, a repo's pins of
its companions are relaxed with it, so that pip picks the companion release that matches
the framework the environment gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = [
    "COMPANIONS",
    "NUMPY1_CONSTRAINT",
    "NUMPY1_RELEASES",
    "companions_of",
    "numpy1_builds",
    "numpy_abi_constraints",
]

#: Distribution → versions built against NumPy 1.x that need `numpy<2` at run time.
NUMPY1_RELEASES: Mapping[str, str] = MappingProxyType(
    {
        "torch": "<2.3",
        "torchvision": "<0.18",
        "torchaudio": "<2.3",
        "tensorflow": "<2.18",
        "tensorflow-cpu": "<2.18",
        "scipy": "<1.13",
        "pandas": "<2.2.2",
        "scikit-learn": "<1.4.2",
        "matplotlib": "<3.8.4",
        "pyarrow": "<16",
        "h5py": "<3.11",
        "opencv-python": "<4.10.0.84",
        "opencv-python-headless": "<4.10.0.84",
    }
)

_TENSORFLOW_COMPANIONS = frozenset(
    {
        "keras",
        "tf-keras",
        "tensorboard",
        "tensorflow-estimator",
        "tensorflow-io-gcs-filesystem",
        "tensorflow-text",
        "tensorflow-probability",
    }
)

#: Framework → packages released in lockstep with it.
COMPANIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "torch": frozenset({"torchvision", "torchaudio", "torchtext", "torchdata"}),
        "tensorflow": _TENSORFLOW_COMPANIONS,
        "tensorflow-cpu": _TENSORFLOW_COMPANIONS,
        "jax": frozenset({"jaxlib"}),
    }
)

#: What `numpy_abi_constraints` adds.
NUMPY1_CONSTRAINT = "numpy<2"


def numpy_abi_constraints(versions: Mapping[str, str]) -> list[str]:
    """`["numpy<2"]` when `versions` hold a NumPy-1 build and a NumPy 2, else `[]`.

    Parameters
    ----------
    versions : Mapping[str, str]
        Canonical name → version of what the environment would hold.

    Returns
    -------
    list[str]
        Constraint lines to add before resolving again.
    """
    numpy = _version(versions.get("numpy"))
    if numpy is None or numpy.major < 2 or not numpy1_builds(versions):
        return []
    return [NUMPY1_CONSTRAINT]


def numpy1_builds(versions: Mapping[str, str]) -> list[str]:
    """`name version` of each NumPy-1 build in `versions`, for messages."""
    found = []
    for name, specifier in NUMPY1_RELEASES.items():
        version = _version(versions.get(name))
        if version is not None and SpecifierSet(specifier).contains(version, prereleases=True):
            found.append(f"{name} {versions[name]}")
    return found


def companions_of(names: Iterable[str]) -> frozenset[str]:
    """The canonical names of the companions of each framework in `names`."""
    found: set[str] = set()
    for name in names:
        found |= COMPANIONS.get(canonicalize_name(name), frozenset())
    return frozenset(found)


def _version(text: str | None) -> Version | None:
    if text is None:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None
