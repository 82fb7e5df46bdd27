"""What the FLOps runtime keeps exact, what it turns into ranges, and what is not its own."""

from __future__ import annotations

import sys
from pathlib import Path

from flops_core.requirements.runtime_probe import RuntimeDistribution, probe_interpreter
from flops_manager.environments.runtime_requirements import runtime_requirements

MARKERS = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux"}


def dist(name: str, version: str, *requires: str, local: bool = False) -> RuntimeDistribution:
    return RuntimeDistribution(name, version, local, tuple(requires))


RUNTIME = {
    "flops": dist(
        "flops",
        "0.1.0",
        "flwr==1.41.0",
        "numpy==2.4.6",
        "typer==0.20.1",
        "pydantic==2.14.3",
        'torch==2.13.0; extra == "dev"',
        local=True,
    ),
    "flwr": dist("flwr", "1.41.0", "numpy>=1.26.0,<3.0.0", "protobuf>=5.28.0,<7.0.0"),
    "numpy": dist("numpy", "2.4.6"),
    "protobuf": dist("protobuf", "6.33.6"),
    "typer": dist("typer", "0.20.1", "click>=8", 'colorama; platform_system == "Windows"'),
    "click": dist("click", "8.5.1"),
    "colorama": dist("colorama", "0.4.6"),
    "pydantic": dist("pydantic", "2.14.3"),
    "torch": dist("torch", "2.13.0+cpu", "sympy"),
    "sympy": dist("sympy", "1.14.0"),
}


def test_wire_packages_stay_exact_and_the_rest_become_ranges() -> None:
    needs = runtime_requirements(RUNTIME, markers=MARKERS)

    assert needs.lines == (
        "flwr==1.41.0",
        "numpy>=1.26,<3",  # wider than FLOps' pin: Flower's own range
        "pydantic>=2.14.3,<3",
        "typer>=0.20.1,<0.21",
    )
    assert set(needs.exact) == {"flops", "flwr"}


def test_closure_follows_requires_dist_but_not_extras_or_foreign_markers() -> None:
    needs = runtime_requirements(RUNTIME, markers=MARKERS)

    assert needs.closure == {"flops", "flwr", "numpy", "protobuf", "typer", "click", "pydantic"}
    assert "torch" not in needs.closure  # a development extra, not the runtime's
    assert "colorama" not in needs.closure  # Windows only


def test_without_a_flops_distribution_the_wire_packages_stand_for_it() -> None:
    runtime = {k: v for k, v in RUNTIME.items() if k != "flops"}

    needs = runtime_requirements(runtime, markers=MARKERS)

    assert needs.lines == ("flwr==1.41.0",)
    assert needs.closure == {"flwr", "numpy", "protobuf"}


def test_the_real_runtime_keeps_flower_and_mlflow_exact_and_numpy_open() -> None:
    runtime = probe_interpreter(Path(sys.executable))

    needs = runtime_requirements(runtime.distributions, markers=runtime.markers)

    lines = {line.split("=")[0].split(">")[0]: line for line in needs.lines}
    assert lines["flwr"].startswith("flwr==") and lines["mlflow"].startswith("mlflow==")
    assert lines["numpy"] == "numpy>=1.26,<3"
    assert {"scipy", "protobuf", "scikit-learn"} <= needs.closure  # through mlflow and flwr
    assert "torch" not in needs.closure and "pytest" not in needs.closure


def test_mlflow_model_support_constrains_the_flavors_frameworks() -> None:
    models = {
        "pytorch": ("torch", "2.5.0"),
        "sklearn": ("scikit-learn", "1.6.0"),
        "xgboost": ("xgboost", "1.7.0"),  # not a FLOps flavor
    }
    runtime = {**RUNTIME, "mlflow": dist("mlflow", "3.17.2")}

    needs = runtime_requirements(runtime, markers=MARKERS, mlflow_models=models)

    assert needs.constraints == ("scikit-learn>=1.6.0", "torch>=2.5.0")
    assert needs.reasons["torch"] == "MLflow 3.17.2 logs pytorch models of torch>=2.5.0 only"
    assert str(needs.allowed("torch")) == ">=2.5.0"
