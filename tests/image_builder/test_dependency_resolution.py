"""Resolving a repo's dependencies natively with pip against the flavour base's runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from flops_core.requirements.dependencies import DependencySpec
from image_builder.dependency_lock import lock_repo_dependencies
from image_builder.errors import DependencyResolutionError
from image_builder.pip_resolver import PipSettings

RUNTIME = ("numpy==2.4.6", "flopstest-a==1.0")


def _lock(spec: DependencySpec, pip: PipSettings, work: Path, runtime: tuple[str, ...] = RUNTIME):
    return lock_repo_dependencies(
        spec, runtime_lock=runtime, flops_version="0.1.0", settings=pip, work_dir=work
    )


def test_the_lock_holds_only_what_the_base_lacks(tmp_path: Path, offline_pip: PipSettings) -> None:
    # Prepare
    spec = DependencySpec("requirements.txt", ("flopstest-b", "numpy", "flops-utils"))

    # Execute
    lock = _lock(spec, offline_pip, tmp_path)

    # Assert: numpy and flopstest-a come from the base, flops-utils is the runtime itself.
    assert lock.requirements == ("flopstest-b==1.0",)
    assert [o.name for o in lock.overrides] == ["flops-utils"]


def test_a_pin_against_the_runtime_is_overridden_without_pip(
    tmp_path: Path, offline_pip: PipSettings
) -> None:
    # Execute
    lock = _lock(DependencySpec("requirements.txt", ("numpy==0.0.1",)), offline_pip, tmp_path)

    # Assert
    assert lock.requirements == ()
    assert [str(o) for o in lock.overrides] == [
        "numpy==0.0.1 overridden: using numpy 2.4.6 (the FLOps runtime needs this version)"
    ]
    assert not (tmp_path / "pip-report.json").exists()


def test_a_conflicting_pair_fails_with_pips_explanation(
    tmp_path: Path, offline_pip: PipSettings
) -> None:
    # Prepare
    spec = DependencySpec("requirements.txt", ("flopstest-b==1.0", "flopstest-a==2.0"))

    # Execute
    with pytest.raises(DependencyResolutionError) as caught:
        _lock(spec, offline_pip, tmp_path, runtime=("numpy==2.4.6",))

    # Assert
    error = caught.value
    prefix = "pip cannot resolve requirements.txt together with the FLOps runtime: "
    assert error.reason.startswith(prefix)
    assert "conflicting dependencies" in error.reason
    assert "\n" not in error.reason
    assert any("The conflict is caused by" in line for line in error.output)
    assert any("flopstest-b 1.0 depends on flopstest-a<2" in line for line in error.output)
    assert not any(line.startswith(("Collecting", "Processing")) for line in error.output)
    assert len(error.output) <= 20


def test_a_conflict_with_the_runtime_names_the_constraint(
    tmp_path: Path, offline_pip: PipSettings
) -> None:
    # Prepare: flopstest-b needs flopstest-a<2, the base has 2.0.
    spec = DependencySpec("requirements.txt", ("flopstest-b",))

    # Execute
    with pytest.raises(DependencyResolutionError) as caught:
        _lock(spec, offline_pip, tmp_path, runtime=("flopstest-a==2.0",))

    # Assert
    assert "requirements.txt" in caught.value.reason
    assert any("(constraint) flopstest-a==2.0" in line for line in caught.value.output)


def test_a_version_pypi_does_not_have_fails_fast(tmp_path: Path) -> None:
    # Prepare: the real index, as in a build.
    spec = DependencySpec("requirements.txt", ("iniconfig==0.0.1",))

    # Execute
    with pytest.raises(DependencyResolutionError) as caught:
        _lock(spec, PipSettings(timeout=120.0), tmp_path)

    # Assert
    reason = caught.value.reason
    assert "Could not find a version that satisfies the requirement iniconfig==0.0.1" in reason
    assert any(
        "No matching distribution found for iniconfig==0.0.1" in line
        for line in caught.value.output
    )


def test_settings_from_the_environment_skip_local_indexes() -> None:
    # Execute
    settings = PipSettings.from_environ(
        {
            "PIP_INDEX_URL": "https://user:pw@mirror.example/simple",
            "PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple https://extra.example/simple",
            "PIP_FIND_LINKS": "/opt/wheels",
        }
    )

    # Assert
    assert settings.index_url == "https://user:pw@mirror.example/simple"
    assert settings.extra_index_urls == ("https://extra.example/simple",)
    assert settings.pip_conf() == (
        "[global]\nindex-url = https://user:pw@mirror.example/simple\n"
        "extra-index-url = https://extra.example/simple\n"
    )
    assert PipSettings().pip_conf() == ""
