"""Which conda packages pip can install, and under which PyPI name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TypeAlias

from packaging.utils import canonicalize_name

__all__ = [
    "CONDA_ONLY_PACKAGES",
    "CONDA_TO_PYPI_NAMES",
    "CondaToPypi",
    "index_backed_conda_to_pypi",
    "translate_conda_name",
]


#: Translates a conda package name into its PyPI name, or None when PyPI has no equivalent.
CondaToPypi: TypeAlias = Callable[[str], str | None]

#: Conda packages that PyPI publishes under another name (keys PEP 503-normalized).
CONDA_TO_PYPI_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "pytorch": "torch",
        "pytorch-cpu": "torch",
        "pytorch-gpu": "torch",
        "pytorch-scatter": "torch-scatter",
        "pytorch-sparse": "torch-sparse",
        "pytorch-cluster": "torch-cluster",
        "pyg": "torch-geometric",
        "py-xgboost": "xgboost",
        "py-xgboost-cpu": "xgboost",
        "py-xgboost-gpu": "xgboost",
        "tensorflow-base": "tensorflow",
        "python-graphviz": "graphviz",
        "matplotlib-base": "matplotlib",
        "pyqt": "PyQt5",
        "py-opencv": "opencv-python",
        "opencv": "opencv-python",
        "msgpack-python": "msgpack",
        "pytables": "tables",
    }
)

#: Conda packages with no PyPI equivalent (keys PEP 503-normalized). On PyPI these come
#: inside wheels (BLAS, CUDA runtimes as `nvidia-*` wheels) or from the operating system.
#: `mkl`, `intel-openmp`, `tbb`, `cmake`, `ninja`, `zstd` and `tzdata` are on PyPI, so absent.
CONDA_ONLY_PACKAGES: frozenset[str] = frozenset(
    canonicalize_name(name)
    for name in (
        # conda plumbing and the C/C++/Fortran runtimes
        "_libgcc_mutex",
        "_openmp_mutex",
        "libgcc",
        "libgcc-ng",
        "libstdcxx",
        "libstdcxx-ng",
        "libgomp",
        "libgfortran",
        "libgfortran-ng",
        "libgfortran5",
        "ld_impl_linux-64",
        "llvm-openmp",
        "gcc",
        "gxx",
        "gfortran",
        "make",
        # CUDA and pytorch-channel selectors
        "cudatoolkit",
        "cudnn",
        "nccl",
        "cuda-version",
        "pytorch-cuda",
        "cpuonly",
        "magma",
        # linear algebra libraries
        "blas",
        "libblas",
        "libcblas",
        "liblapack",
        "liblapacke",
        "openblas",
        "libopenblas",
        # C libraries the interpreter and common packages link against
        "ca-certificates",
        "openssl",
        "libffi",
        "zlib",
        "libzlib",
        "xz",
        "bzip2",
        "ncurses",
        "readline",
        "tk",
        "sqlite",
        "libsqlite",
        "libuuid",
        "libnsl",
        "libxcrypt",
        "libexpat",
        "libmpdec",
        "libedit",
        "libiconv",
        "libxml2",
        "libcurl",
        "krb5",
        "icu",
        "libprotobuf",
        "libabseil",
        "libjpeg-turbo",
        "jpeg",
        "libpng",
        "libtiff",
        "libwebp",
        "freetype",
        "lcms2",
        "hdf5",
        "libzmq",
        "zeromq",
        "libsodium",
        "yaml",
        "libyaml",
        "libuv",
        "nodejs",
        "r-base",
    )
)


def translate_conda_name(name: str) -> str | None:
    """Return the PyPI name of conda package `name`, or None when PyPI has no equivalent.

    FLOps installs with pip, so a conda package is usable only when PyPI has it.
    `CONDA_TO_PYPI_NAMES` lists well-known packages PyPI knows under another name;
    `CONDA_ONLY_PACKAGES` lists native libraries, compilers and conda plumbing with no PyPI
    equivalent (even where an unrelated PyPI project happens to share the name).

    Names in neither `CONDA_TO_PYPI_NAMES` nor `CONDA_ONLY_PACKAGES` are assumed to be on
    PyPI under the same name; `index_backed_conda_to_pypi` checks them instead.
    """
    key = canonicalize_name(name)
    if key in CONDA_ONLY_PACKAGES:
        return None
    return CONDA_TO_PYPI_NAMES.get(key, name)


def index_backed_conda_to_pypi(exists: Callable[[str], bool]) -> CondaToPypi:
    """Return a `CondaToPypi` that asks `exists` (e.g. `PackageIndex.exists`) about unknowns.

    Parameters
    ----------
    exists : Callable[[str], bool]
        Tells whether PyPI (or the configured index) has a project of that name; its
        errors (e.g. `PackageIndexUnavailableError`) propagate.
    """

    def conda_to_pypi(name: str) -> str | None:
        key = canonicalize_name(name)
        if key in CONDA_ONLY_PACKAGES:
            return None
        if key in CONDA_TO_PYPI_NAMES:
            return CONDA_TO_PYPI_NAMES[key]
        return name if exists(name) else None

    return conda_to_pypi
