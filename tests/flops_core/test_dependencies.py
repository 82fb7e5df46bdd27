"""Tests for reading a repo's dependencies (requirements.txt, pyproject.toml, conda files)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from flops_core.requirements.conda_spec import CondaSpec, parse_conda_spec
from flops_core.requirements.dependencies import (
    DEPENDENCY_FILE_NAMES,
    DependencyFileError,
    MissingDependencyFileError,
    index_backed_conda_to_pypi,
    read_dependencies,
    translate_conda_name,
)
from flops_core.requirements.pyproject_dependencies import poetry_specifier


def write(repo: Path, files: dict[str, str | bytes]) -> Path:
    """Write `files` (relative path -> content) under `repo` and return `repo`."""
    for name, content in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"))
    return repo


# --- requirements.txt ---------------------------------------------------------------------


def test_requirements_comments_markers_extras_and_continuations(tmp_path: Path) -> None:
    # Prepare
    repo = write(
        tmp_path,
        {
            "requirements.txt": """
            # the model
            torch==2.1.0  # CPU is fine

            scikit-learn>=1.3,<2
            requests[socks] ; python_version >= "3.8"
            pandas \\
                >=2.0
            """
        },
    )

    # Execute
    spec = read_dependencies(repo)

    # Assert
    assert spec.source_file == "requirements.txt"
    assert spec.requirements == (
        "torch==2.1.0",
        "scikit-learn>=1.3,<2",
        'requests[socks] ; python_version >= "3.8"',
        "pandas >=2.0",
    )
    assert all(Requirement(r) for r in spec.requirements)
    assert spec.python_version is None
    assert spec.warnings == ()


def test_requirements_include_is_relative_to_the_including_file(tmp_path: Path) -> None:
    # Prepare
    repo = write(
        tmp_path,
        {
            "requirements.txt": "-r reqs/base.txt\nnumpy\n",
            "reqs/base.txt": "--requirement=common.txt\nscipy\n",
            "reqs/common.txt": "pyyaml\n",
        },
    )

    # Execute
    spec = read_dependencies(repo)

    # Assert
    assert spec.requirements == ("pyyaml", "scipy", "numpy")


@pytest.mark.parametrize(
    ("files", "reason"),
    [
        ({"requirements.txt": "numpy\n-r ../outside.txt\n"}, "outside the repo"),
        ({"requirements.txt": "numpy\n-r missing.txt\n"}, "does not exist"),
        ({"requirements.txt": "numpy\n-r requirements.txt\n"}, "cycle"),
    ],
)
def test_requirements_bad_include_names_file_and_line(
    tmp_path: Path, files: dict[str, str | bytes], reason: str
) -> None:
    # Prepare
    repo = write(tmp_path / "repo", files)
    (tmp_path / "outside.txt").write_text("evil\n")

    # Execute
    with pytest.raises(DependencyFileError) as caught:
        read_dependencies(repo)

    # Assert
    assert (caught.value.file, caught.value.line) == ("requirements.txt", 2)
    assert reason in str(caught.value)
    assert str(caught.value).startswith("requirements.txt, line 2:")


def test_requirements_options_are_skipped_with_warnings(tmp_path: Path) -> None:
    # Prepare
    repo = write(
        tmp_path,
        {
            "requirements.txt": """
            --index-url https://example.org/simple
            --extra-index-url=https://download.pytorch.org/whl/cpu
            -e ./lib
            numpy==1.26.4 --hash=sha256:abc \\
                --hash=sha256:def
            """
        },
    )

    # Execute
    spec = read_dependencies(repo)

    # Assert
    assert spec.requirements == ("numpy==1.26.4",)
    assert len(spec.warnings) == 4
    assert "line 1" in spec.warnings[0] and "--index-url" in spec.warnings[0]
    assert "line 2" in spec.warnings[1] and "--extra-index-url" in spec.warnings[1]
    assert "line 3" in spec.warnings[2] and "-e ./lib" in spec.warnings[2]
    assert "--hash" in spec.warnings[3]


def test_requirements_urls_are_named_when_possible_else_kept(tmp_path: Path) -> None:
    # Prepare
    vcs_named = "git+https://github.com/org/tool.git@v1#egg=tool"
    vcs_unnamed = "git+https://github.com/org/other.git@main"
    wheel = "https://files.example.org/demo_pkg-1.0-py3-none-any.whl"
    named = "flwr @ https://example.org/flwr-1.0.tar.gz"
    repo = write(
        tmp_path, {"requirements.txt": "\n".join([vcs_named, vcs_unnamed, wheel, named]) + "\n"}
    )

    # Execute
    spec = read_dependencies(repo)

    # Assert
    assert spec.requirements == (f"tool @ {vcs_named}", vcs_unnamed, f"demo-pkg @ {wheel}", named)
    assert len(spec.warnings) == 1 and "line 2" in spec.warnings[0]


def test_requirements_invalid_line_names_file_and_line(tmp_path: Path) -> None:
    # Prepare
    repo = write(tmp_path, {"requirements.txt": "numpy\n\nscipy>=\n"})

    # Execute
    with pytest.raises(DependencyFileError) as caught:
        read_dependencies(repo)

    # Assert
    assert (caught.value.file, caught.value.line) == ("requirements.txt", 3)
    assert "scipy>=" in str(caught.value)


def test_not_utf8_names_the_line(tmp_path: Path) -> None:
    # Prepare
    repo = write(tmp_path, {"requirements.txt": b"numpy\ncaf\xe9\n"})

    # Execute
    with pytest.raises(DependencyFileError) as caught:
        read_dependencies(repo)

    # Assert
    assert (caught.value.file, caught.value.line) == ("requirements.txt", 2)


def test_link_out_of_the_repo_is_not_read(tmp_path: Path) -> None:
    # Prepare
    secret = write(tmp_path, {"secret.txt": "token=abc\n"}) / "secret.txt"
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "requirements.txt").symlink_to(secret)

    # Execute
    with pytest.raises(DependencyFileError) as caught:
        read_dependencies(repo)

    # Assert
    assert str(caught.value) == "requirements.txt: is a link that points outside the repo"


# --- choosing the file --------------------------------------------------------------------


def test_no_dependency_file_lists_the_accepted_names(tmp_path: Path) -> None:
    # Prepare
    repo = write(tmp_path, {"pyproject.toml": "[tool.ruff]\nline-length = 100\n"})

    # Execute
    with pytest.raises(MissingDependencyFileError) as caught:
        read_dependencies(repo)

    # Assert
    assert all(name in str(caught.value) for name in DEPENDENCY_FILE_NAMES)
    assert "pyproject.toml has neither" in str(caught.value)


def test_requirements_txt_wins_and_the_others_are_named_as_ignored(tmp_path: Path) -> None:
    # Prepare
    repo = write(tmp_path, {"requirements.txt": "numpy\n", "conda.yaml": "dependencies: [scipy]\n"})

    # Execute
    spec = read_dependencies(repo)

    # Assert
    assert spec.source_file == "requirements.txt"
    assert spec.warnings == ("requirements.txt used; conda.yaml ignored",)


def test_pyproject_that_only_configures_tools_does_not_count(tmp_path: Path) -> None:
    # Prepare
    repo = write(
        tmp_path,
        {
            "pyproject.toml": "[tool.ruff]\nline-length = 100\n",
            "environment.yml": "dependencies:\n- numpy\n",
        },
    )

    # Execute
    spec = read_dependencies(repo)

    # Assert
    assert spec.source_file == "environment.yml"
    assert spec.requirements == ("numpy",)


# --- pyproject.toml -----------------------------------------------------------------------


def test_pyproject_project_dependencies_and_requires_python(tmp_path: Path) -> None:
    # Prepare
    repo = write(
        tmp_path,
        {
            "pyproject.toml": """
            [project]
            name = "demo"
            requires-python = ">=3.10"
            dependencies = ["torch>=2", "numpy ; python_version < '3.13'"]
            """
        },
    )

    # Execute
    spec = read_dependencies(repo)

    # Assert
    assert spec.source_file == "pyproject.toml"
    assert spec.requirements == ("torch>=2", "numpy ; python_version < '3.13'")
    assert spec.python_version == ">=3.10"


def test_pyproject_setuptools_dynamic_dependencies_read_the_named_file(tmp_path: Path) -> None:
    # Prepare
    repo = write(
        tmp_path,
        {
            "pyproject.toml": """
            [project]
            name = "demo"
            dynamic = ["dependencies"]
            [tool.setuptools.dynamic]
            dependencies = {file = ["deps.txt"]}
            """,
            "deps.txt": "xgboost\n",
        },
    )

    # Execute
    spec = read_dependencies(repo)

    # Assert
    assert spec.requirements == ("xgboost",)


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ('[project]\nname = "demo"\ndependencies = ["numpy",\n', 3),
        ('[project]\nname = "demo"\ndependencies = [\n  "numpy",\n  "scipy>=",\n]\n', 5),
    ],
)
def test_pyproject_errors_name_file_and_line(tmp_path: Path, content: str, line: int) -> None:
    # Prepare
    repo = write(tmp_path, {"pyproject.toml": content})

    # Execute
    with pytest.raises(DependencyFileError) as caught:
        read_dependencies(repo)

    # Assert
    assert (caught.value.file, caught.value.line) == ("pyproject.toml", line)


def test_poetry_dependencies(tmp_path: Path) -> None:
    # Prepare
    repo = write(
        tmp_path,
        {
            "pyproject.toml": """
            [tool.poetry.dependencies]
            python = "^3.10"
            numpy = "^1.26"
            scipy = "~1.11.2"
            pandas = "*"
            requests = { version = ">=2.30", extras = ["socks"], markers = "os_name == 'nt'" }
            tool = { git = "https://github.com/org/tool.git", tag = "v1" }
            docs = { version = "^1", optional = true }
            scipy-old = [
              { version = "^1.10", python = "<3.12" },
              { version = "^1.14", python = ">=3.12" },
            ]
            """
        },
    )

    # Execute
    spec = read_dependencies(repo)

    # Assert
    assert spec.python_version == ">=3.10,<4"
    assert spec.requirements == (
        "numpy>=1.26,<2",
        "scipy>=1.11.2,<1.12",
        "pandas",
        "requests[socks]>=2.30 ; os_name == 'nt'",
        "tool @ git+https://github.com/org/tool.git@v1",
        'scipy-old>=1.10,<2 ; python_version < "3.12"',
        'scipy-old>=1.14,<2 ; python_version >= "3.12"',
    )
    assert spec.warnings == ("pyproject.toml: optional (extra-only) dependency 'docs' skipped",)


@pytest.mark.parametrize(
    ("constraint", "expected"),
    [
        ("^1.2.3", ">=1.2.3,<2"),
        ("^0.2.3", ">=0.2.3,<0.3"),
        ("^0.0.3", ">=0.0.3,<0.0.4"),
        ("^0", ">=0,<1"),
        ("~1.2.3", ">=1.2.3,<1.3"),
        ("~1", ">=1,<2"),
        ("1.2.3", "==1.2.3"),
        ("1.2.*", "==1.2.*"),
        (">= 1.2, < 1.5", ">=1.2,<1.5"),
        ("~=1.4", "~=1.4"),
        ("*", ""),
    ],
)
def test_poetry_specifier(constraint: str, expected: str) -> None:
    # Execute / Assert
    assert poetry_specifier(constraint) == expected


def test_poetry_alternatives_are_an_error_naming_the_line(tmp_path: Path) -> None:
    # Prepare
    content = '[tool.poetry.dependencies]\nnumpy = "^1"\nscipy = "^1 || ^2"\n'
    repo = write(tmp_path, {"pyproject.toml": content})

    # Execute
    with pytest.raises(DependencyFileError) as caught:
        read_dependencies(repo)

    # Assert
    assert (caught.value.file, caught.value.line) == ("pyproject.toml", 3)
    assert "scipy" in str(caught.value)


# --- conda --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("numpy", CondaSpec("numpy")),
        ("numpy=1.26", CondaSpec("numpy", "==1.26.*")),
        ("numpy=1.26.*", CondaSpec("numpy", "==1.26.*")),
        ("numpy=1.26*", CondaSpec("numpy", "==1.26.*")),
        ("numpy==1.26.4", CondaSpec("numpy", "==1.26.4")),
        ("numpy>=1.2,<2", CondaSpec("numpy", ">=1.2,<2")),
        ("numpy >= 1.2", CondaSpec("numpy", ">=1.2")),
        ("numpy 1.26.4", CondaSpec("numpy", "==1.26.4")),
        ("numpy 1.26.4 py311_0", CondaSpec("numpy", "==1.26.4", "py311_0")),
        ("numpy=1.26=py311_0", CondaSpec("numpy", "==1.26", "py311_0")),
        ("conda-forge::NumPy=1.26", CondaSpec("numpy", "==1.26.*")),
        ("conda-forge/linux-64::numpy", CondaSpec("numpy")),
        ("numpy[version='>=1.2,<2']", CondaSpec("numpy", ">=1.2,<2")),
        ("numpy 1.25|1.26", CondaSpec("numpy", untranslatable="1.25|1.26")),
    ],
)
def test_parse_conda_spec(text: str, expected: CondaSpec) -> None:
    # Execute / Assert
    assert parse_conda_spec(text) == expected


@pytest.mark.parametrize("text", ["", "=1.2", "numpy=", "numpy 1 2 3"])
def test_parse_conda_spec_rejects_non_specs(text: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError):
        parse_conda_spec(text)


def test_conda_name_translation() -> None:
    # Execute / Assert
    assert translate_conda_name("pytorch") == "torch"
    assert translate_conda_name("py-xgboost") == "xgboost"
    assert translate_conda_name("python-graphviz") == "graphviz"
    assert translate_conda_name("tensorflow-cpu") == "tensorflow-cpu"
    assert translate_conda_name("_libgcc_mutex") is None
    assert translate_conda_name("cudatoolkit") is None
    assert translate_conda_name("mkl") == "mkl"


def test_conda_environment(tmp_path: Path) -> None:
    # Prepare
    repo = write(
        tmp_path,
        {
            "conda.yaml": """
            name: demo
            channels: [pytorch, conda-forge]
            dependencies:
              - python=3.11
              - pip
              - pytorch::pytorch=2.1
              - conda-forge::scikit-learn>=1.3
              - matplotlib-base=3.8.0=py311_0
              - cudatoolkit=11.8
              - pip:
                  - flwr==1.41.0
                  - -r extra-requirements.txt
            """,
            "extra-requirements.txt": "mlflow\n",
        },
    )

    # Execute
    spec = read_dependencies(repo)

    # Assert
    assert spec.source_file == "conda.yaml"
    assert spec.python_version == "==3.11.*"
    assert spec.requirements == (
        "torch==2.1.*",
        "scikit-learn>=1.3",
        "matplotlib==3.8.0",
        "flwr==1.41.0",
        "mlflow",
    )
    assert spec.conda_only_packages == ("cudatoolkit",)
    assert spec.warnings == ("conda.yaml: conda build strings ignored for matplotlib-base",)


def test_conda_unknown_packages_are_asked_of_the_index(tmp_path: Path) -> None:
    # Prepare
    repo = write(tmp_path, {"conda.yml": "dependencies: [numpy, pytorch, libweird=2]\n"})
    asked: list[str] = []

    def exists(name: str) -> bool:
        asked.append(name)
        return name == "numpy"

    # Execute
    spec = read_dependencies(repo, conda_to_pypi=index_backed_conda_to_pypi(exists))

    # Assert
    assert spec.requirements == ("numpy", "torch")
    assert spec.conda_only_packages == ("libweird",)
    assert asked == ["numpy", "libweird"]


@pytest.mark.parametrize(
    ("content", "line", "reason"),
    [
        ("dependencies:\n  - numpy\n  - [scipy\n", 4, "invalid YAML"),
        ("dependencies: numpy\n", 1, "must be a list"),
        ("dependencies:\n  - numpy\n  - pip: [numpy, 'scipy>=']\n", 3, "scipy>="),
        ("dependencies:\n  - numpy\n  - conda: [x]\n", 3, "pip:"),
        ("dependencies:\n  - numpy\n  - =1.2\n", 3, "invalid conda package"),
    ],
)
def test_conda_errors_name_file_and_line(
    tmp_path: Path, content: str, line: int, reason: str
) -> None:
    # Prepare
    repo = write(tmp_path, {"environment.yml": content})

    # Execute
    with pytest.raises(DependencyFileError) as caught:
        read_dependencies(repo)

    # Assert
    assert (caught.value.file, caught.value.line) == ("environment.yml", line)
    assert reason in str(caught.value)
