"""The FLOps tree's runtime requirements, the flavours and the flavour base's key."""

from __future__ import annotations

from pathlib import Path

from flops_core.flops_tree import MANAGER_ONLY_DISTRIBUTIONS, RUNTIME_PACKAGES, locate_flops_tree
from image_builder.flavors import FLAVORS, base_image_key


def test_runtime_requirements_are_pinned_and_leave_out_the_manager() -> None:
    # Execute
    tree = locate_flops_tree()

    # Assert
    names = {line.split("==")[0] for line in tree.runtime_requirements}
    assert {"flwr", "mlflow", "pyarrow", "datasets", "numpy", "httpx", "pydantic"} <= names
    assert not names & MANAGER_ONLY_DISTRIBUTIONS
    assert all("==" in line for line in tree.runtime_requirements)
    assert set(tree.package_dirs()) == set(RUNTIME_PACKAGES)


def test_flavour_libraries_are_pinned_like_the_dev_extra() -> None:
    # Prepare
    tree = locate_flops_tree()

    # Execute
    sklearn = FLAVORS["sklearn"].requirements(tree)
    pytorch = FLAVORS["pytorch"].requirements(tree)

    # Assert
    assert sklearn[-1] == tree.dev_pins["scikit-learn"]
    assert sklearn[-1].startswith("scikit-learn==")
    assert pytorch[-1].startswith("torch==")
    assert FLAVORS["pytorch"].extra_index_urls == ("https://download.pytorch.org/whl/cpu",)


def test_a_tree_without_pyproject_reads_the_installed_metadata(tmp_path: Path) -> None:
    # Execute
    tree = locate_flops_tree(tmp_path)

    # Assert
    assert any(line.startswith("flwr==") for line in tree.runtime_requirements)
    assert "scikit-learn" in tree.dev_pins


def test_base_key_changes_with_each_input_and_not_with_order() -> None:
    # Prepare
    flavor = FLAVORS["sklearn"]
    args = {"base_image": "r/flops/debian-python:bookworm", "containerfile": "FROM x\n"}

    # Execute
    key = base_image_key(requirements=["a==1", "b==2"], flavor=flavor, **args)

    # Assert
    assert key == base_image_key(requirements=["b==2", "a==1"], flavor=flavor, **args)
    assert key != base_image_key(requirements=["a==1", "b==3"], flavor=flavor, **args)
    assert key != base_image_key(requirements=["a==1", "b==2"], flavor=FLAVORS["keras"], **args)
    commented = {**args, "containerfile": "# the base\nFROM x\n\n"}
    assert key == base_image_key(requirements=["a==1", "b==2"], flavor=flavor, **commented)
    changed = {**args, "base_image": "python:3.11-slim"}
    assert key != base_image_key(requirements=["a==1", "b==2"], flavor=flavor, **changed)
    assert len(key) == 16
