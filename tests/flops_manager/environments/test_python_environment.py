"""Building, reusing and sharing venvs for ML repos, with real `venv` and pip (offline)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from flops_manager.environments import (
    BuiltEnvironment,
    EnvironmentBuilder,
    EnvironmentBuildError,
    PackageDownloadError,
    RequirementsConflictError,
    UnsupportedDependenciesError,
)
from tests.flops_manager.environments.conftest import BuilderFactory, make_repo

REQUIREMENTS = """\
flopstest-tiny==1.0
flwr==1.40.0           # the runtime has 1.41.0, and Flower is wire format: overridden
mlflow<3               # the runtime has 3.x: overridden
six                    # the runtime has it: nothing to install
tomli ; python_version < "3.0"
"""


def run_in(env: BuiltEnvironment, code: str) -> str:
    """Run `code` with the environment's interpreter, as a learner would be."""
    result = subprocess.run(
        [str(env.python), "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@dataclass
class Built:
    """One environment built for the whole module, its repo and the progress of its build."""

    builder: EnvironmentBuilder
    repo: Path
    env: BuiltEnvironment
    lines: list[str]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, offline_args: tuple[str, ...]) -> Built:
    root = tmp_path_factory.mktemp("built")
    builder = EnvironmentBuilder(
        root / "cache", runtime_python=Path(sys.executable), pip_timeout=120, pip_args=offline_args
    )
    repo = make_repo(root / "repo", REQUIREMENTS)
    lines: list[str] = []
    env = builder.ensure(repo, commit="a" * 40, on_progress=lines.append)
    return Built(builder, repo, env, lines)


def test_build_installs_only_what_the_runtime_lacks(built: Built) -> None:
    env = built.env

    assert not env.reused
    assert env.installed == ["flopstest-tiny==1.0"]
    assert env.dependency_file == "requirements.txt"
    assert env.python == env.path / "bin" / "python"
    assert env.path.name == env.key
    assert built.lines[:5] == [
        "reading dependencies",
        "creating venv",
        "resolving the requirements with the FLOps runtime's",
        "installing 1 package",
        built.lines[4],
    ]
    assert built.lines[4].startswith("done in ")


def test_conflicting_runtime_pins_are_overrides(built: Built) -> None:
    overrides = {o.name: (o.requested, o.used) for o in built.env.overrides}

    assert overrides == {
        "flwr": ("flwr==1.40.0", "flwr 1.41.0"),
        "mlflow": ("mlflow<3", overrides["mlflow"][1]),
    }
    assert overrides["mlflow"][1].startswith("mlflow 3.")


def test_venv_imports_user_package_and_runtime(built: Built) -> None:
    code = (
        "import json, flopstest_tiny, flwr, flops_utils.ml_repo_templates, numpy; "
        "print(json.dumps([flopstest_tiny.VALUE, flopstest_tiny.__file__, flwr.__file__, "
        "numpy.__version__]))"
    )

    value, tiny_file, flwr_file, numpy_version = json.loads(run_in(built.env, code))

    assert value == "tiny 1.0"
    assert Path(tiny_file).is_relative_to(built.env.path)  # the venv's own site-packages
    assert not Path(flwr_file).is_relative_to(built.env.path)  # borrowed from the runtime
    import numpy

    assert numpy_version == numpy.__version__


def test_second_ensure_reuses_quickly(built: Built) -> None:
    lines: list[str] = []

    again = built.builder.ensure(built.repo, on_progress=lines.append)

    assert again.reused
    assert (again.key, again.path) == (built.env.key, built.env.path)
    assert again.overrides == built.env.overrides
    assert again.build_seconds < 1.0
    assert lines[1] == f"reusing environment {built.env.key}"


def test_same_dependencies_at_another_commit_share_the_environment(
    built: Built, tmp_path: Path
) -> None:
    other = make_repo(tmp_path / "other-checkout", "# moved around\n" + REQUIREMENTS)
    (other / "model_manager.py").write_text("class ModelManager: pass  # changed\n")

    env = built.builder.ensure(other, commit="b" * 40)

    assert env.reused
    assert env.key == built.env.key


def test_different_dependencies_get_another_environment(
    builder_factory: BuilderFactory, tmp_path: Path
) -> None:
    builder = builder_factory()
    first = builder.ensure(make_repo(tmp_path / "one", "six\n"))

    second = builder.ensure(make_repo(tmp_path / "two", "flopstest-tiny\n"))

    assert first.key != second.key
    assert first.installed == []  # the runtime has six: no pip run at all
    assert run_in(first, "import six, flops_utils; print('ok')") == "ok"


def test_unresolvable_requirement_fails_and_leaves_no_cache_entry(
    builder_factory: BuilderFactory, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", "this-package-does-not-exist-flops==1.0\n")
    builder = builder_factory()

    with pytest.raises(RequirementsConflictError) as raised:
        builder.ensure(repo)

    message = str(raised.value)
    assert "requirements.txt" in message
    assert "No matching distribution found for this-package-does-not-exist-flops==1.0" in message
    assert not raised.value.retryable
    assert raised.value.dependency_file == "requirements.txt"
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


def test_dependency_conflicting_with_the_runtime_is_permanent(
    builder_factory: BuilderFactory, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo", "flopstest-old-flower\n")  # needs flwr<1

    with pytest.raises(RequirementsConflictError) as raised:
        builder_factory().ensure(repo)

    message = str(raised.value)
    assert message.startswith(
        "requirements.txt: the repo's requirements cannot be installed next to the FLOps runtime: "
    )
    assert "the FLOps runtime requires flwr==1.41.0" in message
    assert "flopstest-old-flower 1.0 depends on flwr<1" in message


def test_a_pin_the_runtime_excludes_is_relaxed_and_reported_again_on_reuse(
    builder_factory: BuilderFactory, tmp_path: Path
) -> None:
    builder = builder_factory()
    repo = make_repo(tmp_path / "repo", "flopstest-app==1.0\n")  # 1.0 needs flwr<1

    env = builder.ensure(repo)
    again = builder.ensure(repo)

    assert env.installed == ["flopstest-app==2.0"]
    assert [(r.package, r.asked, r.got) for r in env.relaxed] == [
        ("flopstest-app", "flopstest-app==1.0", "2.0")
    ]
    assert "flopstest-app 1.0 depends on flwr<1" in env.relaxed[0].why
    assert run_in(env, "import flopstest_app; print(flopstest_app.VALUE)") == "app 2.0"
    assert again.reused and again.relaxed == env.relaxed


def test_unreachable_index_is_retryable_and_hides_credentials(
    builder_factory: BuilderFactory, tmp_path: Path
) -> None:
    with socket.socket() as s:  # a port nothing listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    index = f"http://flops:s3cret-token@127.0.0.1:{port}/simple"
    builder = builder_factory(pip_args=("--index-url", index, "--retries", "1", "--timeout", "2"))
    repo = make_repo(tmp_path / "repo", "this-package-does-not-exist-flops==1.0\n")

    with pytest.raises(PackageDownloadError) as raised:
        builder.ensure(repo)

    assert raised.value.retryable
    assert "s3cret" not in str(raised.value)
    assert "s3cret" not in raised.value.output_tail


def test_concurrent_ensure_builds_once(builder_factory: BuilderFactory, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", "flopstest-tiny==1.0\n")
    builders = [builder_factory(), builder_factory()]  # own probes and lock descriptors
    start = threading.Barrier(2)
    results: list[BuiltEnvironment] = []
    lines: list[str] = []
    errors: list[BaseException] = []

    def ensure(builder: EnvironmentBuilder) -> None:
        try:
            start.wait()
            results.append(builder.ensure(repo, on_progress=lines.append))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=ensure, args=(b,)) for b in builders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert sorted(r.reused for r in results) == [False, True]
    assert results[0].key == results[1].key
    assert lines.count("creating venv") == 1
    assert run_in(results[0], "import flopstest_tiny; print(flopstest_tiny.VALUE)") == "tiny 1.0"


_ENSURE_IN_A_PROCESS = """
import json, sys
from pathlib import Path
from flops_manager.environments import EnvironmentBuilder
cache, repo, *pip_args = sys.argv[1:]
builder = EnvironmentBuilder(Path(cache), runtime_python=Path(sys.executable), pip_timeout=120,
                             pip_args=pip_args)
env = builder.ensure(Path(repo))
print(json.dumps([env.key, env.reused]))
"""


def test_concurrent_ensure_from_two_processes_builds_once(
    tmp_path: Path, offline_args: tuple[str, ...]
) -> None:
    repo = make_repo(tmp_path / "repo", "flopstest-tiny==1.0\n")
    command = [sys.executable, "-c", _ENSURE_IN_A_PROCESS, str(tmp_path / "cache"), str(repo)]
    source_root = Path(__file__).resolve().parents[3]  # flops_manager may not be installed

    processes = [
        subprocess.Popen(
            [*command, *offline_args], cwd=source_root, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [json.loads(p.communicate(timeout=120)[0]) for p in processes]

    assert [p.returncode for p in processes] == [0, 0]
    assert outputs[0][0] == outputs[1][0]
    assert sorted(reused for _, reused in outputs) == [False, True]


def test_unavailable_python_pin_is_a_warning(
    builder_factory: BuilderFactory, tmp_path: Path
) -> None:
    pyproject = '[project]\nname = "x"\nrequires-python = ">=3.99"\ndependencies = ["six"]\n'
    repo = make_repo(tmp_path / "repo", pyproject, file_name="pyproject.toml")

    env = builder_factory(search_path="").ensure(repo)

    version = ".".join(map(str, sys.version_info[:3]))
    assert env.python_version == version
    assert any(w.startswith(f"requested python >=3.99, using {version}") for w in env.warnings)


@pytest.mark.skipif(
    not Path("/usr/bin/python3.11").exists() or sys.version_info[:3] <= (3, 11, 2),
    reason="needs an older Python 3.11 than the runtime's at /usr/bin/python3.11",
)
def test_python_pin_picks_a_matching_interpreter_of_the_same_minor_version(
    builder_factory: BuilderFactory, tmp_path: Path
) -> None:
    path_dir = tmp_path / "bin"
    path_dir.mkdir()
    (path_dir / "python3.11").symlink_to("/usr/bin/python3.11")
    older = subprocess.run(
        ["/usr/bin/python3.11", "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    conda = f"name: x\ndependencies:\n  - python={older}\n  - pip:\n    - flopstest-tiny\n"
    repo = make_repo(tmp_path / "repo", conda, file_name="conda.yaml")

    env = builder_factory(search_path=str(path_dir)).ensure(repo)

    assert env.warnings == []
    assert env.python_version == older
    code = "import platform, flopstest_tiny, flwr; print(platform.python_version())"
    assert run_in(env, code) == older


def test_conda_only_packages_are_refused(builder_factory: BuilderFactory, tmp_path: Path) -> None:
    conda = "name: x\ndependencies:\n  - libgcc-ng\n  - numpy\n"
    repo = make_repo(tmp_path / "repo", conda, file_name="conda.yaml")

    with pytest.raises(UnsupportedDependenciesError, match="libgcc-ng"):
        builder_factory().ensure(repo)


def test_prune_keeps_the_most_recently_used(
    builder_factory: BuilderFactory, tmp_path: Path
) -> None:
    builder = builder_factory()
    old = builder.ensure(make_repo(tmp_path / "old", "six\n"))
    new = builder.ensure(make_repo(tmp_path / "new", "flopstest-tiny\n"))
    time.sleep(0.01)
    builder.ensure(make_repo(tmp_path / "old-again", "six\n"))  # reuse: now the newest

    assert builder.prune(keep=1) == [new.key]

    assert old.path.is_dir() and not new.path.exists()
    assert builder.remove(old.key) and not old.path.exists()
    assert not builder.remove(old.key)


def test_errors_are_environment_build_errors() -> None:
    assert issubclass(RequirementsConflictError, EnvironmentBuildError)
    assert PackageDownloadError.retryable and not RequirementsConflictError.retryable


@pytest.mark.e2e
def test_installs_from_the_machines_configured_indexes(tmp_path: Path) -> None:
    """No extra pip arguments: pip's own configuration (indexes, find-links) decides."""
    builder = EnvironmentBuilder(
        tmp_path / "cache", runtime_python=Path(sys.executable), pip_timeout=300
    )
    repo = make_repo(tmp_path / "repo", "jmespath\nnumpy==1.26.4\n")

    env = builder.ensure(repo)

    # numpy 1.26.4 fits the runtime's range (numpy>=1.26,<3): it goes into the venv, with
    # a pandas that works with it (the runtime's pandas 3.1 needs numpy>=2.0.2)
    installed = dict(line.split("==") for line in env.installed)
    assert installed["numpy"] == "1.26.4" and "jmespath" in installed
    assert installed["pandas"].startswith(("2.", "3.0."))
    assert env.overrides == [] and env.relaxed == []
    code = (
        "import jmespath, numpy, pandas, pyarrow, scipy, sklearn, flwr, mlflow, datasets; "
        "import flops_learner.app, flops_aggregator.app, flops_aggregator.tracking; "
        "print(numpy.__version__, numpy.__file__)"
    )
    version, path = run_in(env, code).split()
    assert version == "1.26.4" and Path(path).is_relative_to(env.path)
