"""Installing a lock's wheels for another platform natively, laid out like the image's venv."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

from image_builder.build_context import FIXED_MTIME
from image_builder.cross_install import PREPARED_MARKER, prepare_platform, target_arch
from image_builder.pip_resolver import PipSettings


def test_wheels_for_arm64_are_laid_out_like_the_venv_and_compiled(
    tmp_path: Path, offline_pip: PipSettings
) -> None:
    # Execute
    ok = prepare_platform(
        ["flopstest-a==1.0", "flopstest-b==1.0"],
        platform="linux/arm64",
        dest=tmp_path / "prepared-arm64",
        settings=offline_pip,
    )

    # Assert
    assert ok
    site = tmp_path / "prepared-arm64" / "lib" / "python3.11" / "site-packages"
    assert (site / "flopstest_a.py").is_file()
    assert (site / "flopstest_b-1.0.dist-info" / "METADATA").is_file()
    assert (tmp_path / "prepared-arm64" / PREPARED_MARKER).read_text() == "linux/arm64\n"
    pyc = Path(importlib.util.cache_from_source(str(site / "flopstest_a.py")))
    header = pyc.read_bytes()[:16]
    assert struct.unpack("<I", header[8:12])[0] == FIXED_MTIME  # valid for the fixed times
    assert not list(tmp_path.glob(".*"))  # no staging or lock file left behind


def test_a_distribution_without_a_wheel_leaves_the_folder_empty(
    tmp_path: Path, offline_pip: PipSettings
) -> None:
    # Execute
    ok = prepare_platform(
        ["flopstest-a==1.0", "flopstest-missing==1.0"],
        platform="linux/arm64",
        dest=tmp_path / "prepared-arm64",
        settings=offline_pip,
    )

    # Assert
    assert not ok
    assert list((tmp_path / "prepared-arm64").iterdir()) == []


def test_unknown_machines_are_left_to_pip_in_the_image(tmp_path: Path) -> None:
    assert target_arch("linux/arm/v7") == "arm"
    assert not prepare_platform(
        ["x==1"], platform="linux/s390x", dest=tmp_path / "p", settings=PipSettings()
    )
