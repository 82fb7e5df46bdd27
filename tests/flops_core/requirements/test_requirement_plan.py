"""Which repo requirements yield to the FLOps runtime, and how environments are keyed."""

from __future__ import annotations

from pathlib import Path

from flops_core.requirements.requirement_plan import environment_key, plan_requirements
from flops_core.requirements.runtime_probe import InterpreterInfo, RuntimeDistribution
from flops_manager.environments import Override

RUNTIME = {
    "numpy": RuntimeDistribution("numpy", "2.4.6", local=False),
    "mlflow": RuntimeDistribution("mlflow", "3.17.2", local=False),
    "flops": RuntimeDistribution("flops", "0.1.0", local=True),
    "my-local-lib": RuntimeDistribution("my-local-lib", "1.0", local=True),
}
MARKERS = {"python_version": "3.11", "python_full_version": "3.11.7", "sys_platform": "linux"}


def interpreter(version: str = "3.11.7") -> InterpreterInfo:
    return InterpreterInfo(Path("/py/bin/python"), version, MARKERS, ("/site",), RUNTIME, True)


def test_conflicting_pins_become_overrides() -> None:
    plan = plan_requirements(["numpy==1.26.4", "MLflow<3"], runtime=RUNTIME, markers=MARKERS)

    assert plan.install == ()
    assert plan.overrides == (
        Override("numpy", "numpy==1.26.4", "numpy 2.4.6", "the FLOps runtime needs this version"),
        Override("MLflow", "MLflow<3", "mlflow 3.17.2", "the FLOps runtime needs this version"),
    )
    assert "numpy==1.26.4 overridden: using numpy 2.4.6" in str(plan.overrides[0])


def test_requirements_the_runtime_satisfies_are_dropped_silently() -> None:
    plan = plan_requirements(["numpy>=2", "mlflow"], runtime=RUNTIME, markers=MARKERS)

    assert (plan.install, plan.overrides) == ((), ())
    assert plan.satisfied == ("numpy>=2", "mlflow")


def test_satisfied_requirement_with_extras_keeps_only_the_extras() -> None:
    plan = plan_requirements(["mlflow[genai]>=3"], runtime=RUNTIME, markers=MARKERS)

    assert plan.install == ("mlflow[genai]",)


def test_markers_are_evaluated_and_removed() -> None:
    requirements = ['tomli ; python_version < "3.11"', 'Six_Lib >= 1.0 ; sys_platform == "linux"']

    plan = plan_requirements(requirements, runtime=RUNTIME, markers=MARKERS)

    assert plan.install == ("six-lib>=1.0",)
    assert plan.skipped == (requirements[0],)


def test_urls_and_paths_pass_through_unless_they_name_a_runtime_package() -> None:
    requirements = [
        "mylib @ git+https://user:token@example.com/mylib.git",
        "./vendored/pkg",
        "numpy @ https://example.com/numpy-1.0.tar.gz",
    ]

    plan = plan_requirements(requirements, runtime=RUNTIME, markers=MARKERS)

    assert plan.install == tuple(requirements[:2])
    assert [o.name for o in plan.overrides] == ["numpy"]


def test_flops_itself_is_never_installed_from_an_index() -> None:
    plan = plan_requirements(["flops-utils>=0.1"], runtime=RUNTIME, markers=MARKERS)

    assert plan.install == ()
    assert plan.overrides[0].reason == "FLOps itself is provided by the runtime"


def test_override_never_shows_url_credentials() -> None:
    plan = plan_requirements(
        ["numpy @ https://user:secret@example.com/numpy.whl"], runtime=RUNTIME, markers=MARKERS
    )

    assert "secret" not in plan.overrides[0].requested


def test_runtime_packages_not_fixed_go_to_pip_and_count_as_satisfied_when_installed() -> None:
    fixed = {k: v for k, v in RUNTIME.items() if k in ("mlflow", "flops")}

    plan = plan_requirements(
        ["numpy==1.26.4", "numpy>=2", "mlflow<3"], runtime=fixed, markers=MARKERS, installed=RUNTIME
    )

    assert plan.install == ("numpy==1.26.4", "numpy>=2")
    assert plan.satisfied == ("numpy>=2",)
    assert plan.needs_pip
    assert [o.name for o in plan.overrides] == ["mlflow"]


def test_nothing_for_pip_when_the_runtime_satisfies_every_line() -> None:
    plan = plan_requirements(["numpy>=2"], runtime={}, markers=MARKERS, installed=RUNTIME)

    assert plan.install == ("numpy>=2",) and not plan.needs_pip


def test_key_ignores_order_and_depends_on_content() -> None:
    def key(
        install: list[str], version: str = "3.11.7", fingerprint: str = "f", runtime: str = "r"
    ) -> str:
        return environment_key(
            install,
            interpreter=interpreter(version),
            runtime_fingerprint=fingerprint,
            pip_args=(),
            runtime_lines=(runtime,),
        )

    assert key(["a", "b"]) == key(["b", "a"])
    keys = {
        key(["a"]),
        key(["a", "b"]),
        key(["a"], "3.11.8"),
        key(["a"], fingerprint="g"),
        key(["a"], runtime="numpy>=1.26,<3"),
    }
    assert len(keys) == 5
