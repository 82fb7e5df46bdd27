"""Throwaway ML repos, tiny local wheels and environment builders that install only from them."""

from __future__ import annotations

import base64
import hashlib
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from flops_manager.environments import EnvironmentBuilder

BuilderFactory = Callable[..., EnvironmentBuilder]


def make_wheel(
    folder: Path, name: str, version: str, source: str, requires: tuple[str, ...] = ()
) -> Path:
    """Write a pure-Python wheel of one module `name.replace('-', '_')` into `folder`."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n" + "".join(
        f"Requires-Dist: {r}\n" for r in requires
    )
    files = {
        f"{module}.py": source,
        f"{dist_info}/METADATA": metadata,
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: flops-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{path},sha256={digest.decode()},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def make_repo(folder: Path, requirements: str, *, file_name: str = "requirements.txt") -> Path:
    """An ML repo checkout with just a dependency file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file_name).write_text(requirements, encoding="utf-8")
    (folder / "model_manager.py").write_text("class ModelManager: ...\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Local wheels: `flopstest-tiny` 1.0, `flopstest-old-flower` (needs flwr<1), and
    `flopstest-app` 1.0 (needs flwr<1) and 2.0 (needs nothing)."""
    folder = tmp_path_factory.mktemp("wheels")
    make_wheel(folder, "flopstest-tiny", "1.0", 'VALUE = "tiny 1.0"\n')
    make_wheel(folder, "flopstest-old-flower", "1.0", "", requires=("flwr<1",))
    make_wheel(folder, "flopstest-app", "1.0", "", requires=("flwr<1",))
    make_wheel(folder, "flopstest-app", "2.0", 'VALUE = "app 2.0"\n')
    return folder


@pytest.fixture(scope="session")
def offline_args(wheelhouse: Path) -> tuple[str, ...]:
    """pip arguments that install from `wheelhouse` only."""
    return ("--no-index", "--find-links", str(wheelhouse))


@pytest.fixture
def builder_factory(tmp_path: Path, offline_args: tuple[str, ...]) -> BuilderFactory:
    """Make builders over one cache in `tmp_path`, offline unless told other pip arguments."""

    def factory(**overrides: object) -> EnvironmentBuilder:
        options: dict[str, object] = {
            "runtime_python": Path(sys.executable),
            "pip_timeout": 120.0,
            "pip_args": offline_args,
        }
        options.update(overrides)
        return EnvironmentBuilder(tmp_path / "cache", **options)  # type: ignore[arg-type]

    return factory
