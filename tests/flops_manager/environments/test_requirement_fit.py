"""Relaxing pins that cannot live with the runtime, companions and NumPy-ABI facts, with real pip.

pip resolves against a local wheelhouse of tiny wheels (no index, no machine configuration),
in a venv that sees this test interpreter's packages as the runtime, as environments do.
Fake `torch`/`torchvision`/`numpy` wheels stand for the real ones, whose names the
framework facts know.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from flops_core.requirements.framework_facts import numpy_abi_constraints
from flops_core.requirements.runtime_probe import probe_interpreter
from flops_manager.environments import RequirementsConflictError
from flops_manager.environments.pip_resolution import PipResolver, parse_conflict
from flops_manager.environments.requirement_fit import fit_requirements, nearest_first
from flops_manager.environments.runtime_requirements import RuntimeRequirements
from flops_manager.environments.venv_setup import create_venv
from tests.flops_manager.environments.conftest import make_wheel

#: The runtime of these tests: it needs flopstest-base>=2 and numpy in Flower's range.
RUNTIME = RuntimeRequirements(
    lines=("flopstest-base>=2", "numpy>=1.26,<3"),
    closure=frozenset({"flopstest-base", "numpy"}),
    exact={},
)
INSTALLED = {
    canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()
}


@pytest.fixture(scope="module")
def resolver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipResolver]:
    """pip of a fresh venv that sees this interpreter's packages, offline, unconfigured."""
    root = tmp_path_factory.mktemp("fit")
    wheels = root / "wheels"
    for version in ("1.0", "2.0", "2.5"):
        make_wheel(wheels, "flopstest-base", version, "")
    for version, base in (("1.0", "<1.5"), ("1.1", "<1.5"), ("2.0", ">=2"), ("2.1", ">=2")):
        make_wheel(wheels, "flopstest-app", version, "", requires=(f"flopstest-base{base}",))
    for version in ("1.0", "2.0"):
        make_wheel(wheels, "flopstest-never", version, "", requires=("flopstest-base<1",))
    for version, base in (("2.1.1", "<1.5"), ("2.2.0", "<1.5"), ("2.3.0", ">=2")):
        make_wheel(wheels, "torch", version, "", requires=(f"flopstest-base{base}",))
    for version, torch in (("0.16.1", "2.1.1"), ("0.17.0", "2.2.0"), ("0.18.0", "2.3.0")):
        make_wheel(wheels, "torchvision", version, "", requires=(f"torch=={torch}",))
    make_wheel(wheels, "numpy", "1.26.4", "")
    runtime = probe_interpreter(Path(sys.executable))
    python = create_venv(
        root / "venv",
        python=Path(sys.executable),
        runtime_paths=runtime.paths,
        with_pip=False,
        must_import=["pip"],
        prompt="fit",
        timeout=60,
    )
    saved = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    for key in saved:
        del os.environ[key]
    os.environ["PIP_CONFIG_FILE"] = os.devnull  # not this machine's indexes and caps
    try:
        yield PipResolver(
            python,
            pip_args=("--no-index", "--find-links", str(wheels)),
            timeout=120,
            dependency_file="requirements.txt",
        )
    finally:
        del os.environ["PIP_CONFIG_FILE"]
        os.environ.update(saved)


def fit(resolver: PipResolver, *lines: str) -> tuple[dict[str, str], list[tuple[str, str, str]]]:
    fitted = fit_requirements(lines, runtime=RUNTIME, installed=INSTALLED, resolver=resolver)
    assert fitted.requirements[: len(RUNTIME.lines)] == RUNTIME.lines
    return fitted.installs, [(r.package, r.asked, r.got) for r in fitted.relaxed]


def test_a_pin_the_runtime_allows_is_installed_as_asked(resolver: PipResolver) -> None:
    installs, relaxed = fit(resolver, "flopstest-app==2.0")

    assert installs == {"flopstest-app": "2.0", "flopstest-base": "2.5"}
    assert relaxed == []


def test_an_impossible_pin_is_relaxed_to_the_nearest_release_that_fits(
    resolver: PipResolver,
) -> None:
    fitted = fit_requirements(
        ["flopstest-app==1.0"], runtime=RUNTIME, installed=INSTALLED, resolver=resolver
    )

    assert fitted.installs["flopstest-app"] == "2.0"  # 1.1 is nearer but needs base<1.5 too
    (relaxation,) = fitted.relaxed
    assert (relaxation.package, relaxation.asked, relaxation.got) == (
        "flopstest-app",
        "flopstest-app==1.0",
        "2.0",
    )
    assert "the FLOps runtime requires flopstest-base>=2" in relaxation.why
    assert "flopstest-app 1.0 depends on flopstest-base<1.5" in relaxation.why
    assert fitted.requirements[-1] == "flopstest-app==2.0"


def test_a_relaxed_framework_takes_its_companions_along(resolver: PipResolver) -> None:
    installs, relaxed = fit(resolver, "torch==2.1.1", "torchvision==0.16.1")

    assert (installs["torch"], installs["torchvision"]) == ("2.3.0", "0.18.0")
    assert relaxed == [
        ("torch", "torch==2.1.1", "2.3.0"),
        ("torchvision", "torchvision==0.16.1", "0.18.0"),
    ]


def test_an_unpinned_companion_follows_the_framework_pin(resolver: PipResolver) -> None:
    installs, relaxed = fit(resolver, "torch==2.3.0", "torchvision")

    assert installs["torchvision"] == "0.18.0"
    assert relaxed == []


def test_a_pin_no_release_fits_fails_in_one_sentence_naming_both_sides(
    resolver: PipResolver,
) -> None:
    with pytest.raises(RequirementsConflictError) as caught:
        fit(resolver, "flopstest-never==1.0")

    message = str(caught.value)
    assert message.startswith(
        "flopstest-never==1.0 cannot be installed next to the FLOps runtime, and no other "
        "release of flopstest-never fits (1 tried): "
    )
    assert "the FLOps runtime requires flopstest-base>=2" in message
    assert "flopstest-never 1.0 depends on flopstest-base<1" in message
    assert "\n" not in message


def test_a_numpy1_build_gets_numpy_below_2_in_the_venv(resolver: PipResolver) -> None:
    numpy_only = RuntimeRequirements(("numpy>=1.26,<3",), frozenset({"numpy"}), {})

    old = fit_requirements(
        ["torch==2.2.0"], runtime=numpy_only, installed=INSTALLED, resolver=resolver
    )
    new = fit_requirements(
        ["torch==2.3.0"], runtime=numpy_only, installed=INSTALLED, resolver=resolver
    )

    assert old.constraints == ("numpy<2",)
    assert old.installs["numpy"] == "1.26.4"  # shadows the runtime's NumPy 2 in the venv
    assert old.relaxed == ()
    assert new.constraints == () and "numpy" not in new.installs


def test_numpy_abi_facts() -> None:
    assert numpy_abi_constraints({"torch": "2.1.1+cu121", "numpy": "2.4.6"}) == ["numpy<2"]
    assert numpy_abi_constraints({"torch": "2.1.1", "numpy": "1.26.4"}) == []
    assert numpy_abi_constraints({"torch": "2.3.0", "numpy": "2.4.6"}) == []
    assert numpy_abi_constraints({"scikit-learn": "1.4.1", "numpy": "2.0.2"}) == ["numpy<2"]
    assert numpy_abi_constraints({"scikit-learn": "1.4.2", "numpy": "2.0.2"}) == []


def test_nearest_first_orders_by_distance_newer_first_on_ties() -> None:
    releases = ["2.11.0", "2.12.0", "2.12.1", "2.13.0", "2.14.0rc1", "2.14.0"]

    assert nearest_first(releases, "tf==2.12.0") == ["2.12.1", "2.11.0", "2.13.0", "2.14.0"]
    assert nearest_first(releases, "tf>=2.12,<2.13") == ["2.13.0", "2.11.0", "2.14.0"]
    assert nearest_first(releases, "tf==2.12.5") == [
        "2.13.0",
        "2.12.1",
        "2.14.0",
        "2.12.0",
        "2.11.0",
    ]


def test_parse_conflict_names_both_sides() -> None:
    output = (
        "ERROR: Cannot install -r req.txt (line 1) and numpy<3 and >=1.26 because these "
        "package versions have conflicting dependencies.\n\nThe conflict is caused by:\n"
        "    The user requested numpy<3 and >=1.26\n"
        "    tensorflow 2.12.0 depends on numpy<1.24 and >=1.22\n\n"
        "To fix this you could try to:\n"
    )

    conflict = parse_conflict(output)

    assert conflict.names == {"numpy", "tensorflow"}
    assert conflict.lines == (
        "The user requested numpy<3 and >=1.26",
        "tensorflow 2.12.0 depends on numpy<1.24 and >=1.22",
    )


def test_a_pin_below_what_mlflow_logs_is_relaxed_and_mlflow_is_named(
    resolver: PipResolver,
) -> None:
    runtime = RuntimeRequirements(
        lines=(),
        closure=frozenset(),
        exact={},
        constraints=("torch>=2.3.0",),
        reasons={"torch": "MLflow logs pytorch models of torch>=2.3.0 only"},
    )

    fitted = fit_requirements(
        ["torch==2.1.1", "torchvision"], runtime=runtime, installed=INSTALLED, resolver=resolver
    )

    assert (fitted.installs["torch"], fitted.installs["torchvision"]) == ("2.3.0", "0.18.0")
    (relaxation,) = fitted.relaxed
    assert relaxation.why == (
        "the repo asks for torch==2.1.1; pip's constraints allow only torch>=2.3.0 "
        "(MLflow logs pytorch models of torch>=2.3.0 only)"
    )
