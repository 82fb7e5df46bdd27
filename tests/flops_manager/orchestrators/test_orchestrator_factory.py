"""The factory: known kinds build their backend (others name the valid ones), and settings."""

from pathlib import Path
from typing import Any

import pytest

from flops_manager.core.config import Settings
from flops_manager.orchestrators import (
    DockerOrchestrator,
    LocalOrchestrator,
    OakestraOrchestrator,
    Orchestrator,
    create_orchestrator,
    orchestrators_from_settings,
)


@pytest.mark.parametrize("kind", ["local", " Local "])
def test_local_kind_builds_a_local_orchestrator(tmp_path: Path, kind: str) -> None:
    orchestrator = create_orchestrator(kind, state_dir=tmp_path)
    try:
        assert isinstance(orchestrator, LocalOrchestrator)
        assert orchestrator.health().ok
    finally:
        orchestrator.close()


def test_unknown_kinds_name_the_valid_kinds() -> None:
    with pytest.raises(ValueError, match="unknown") as error:
        create_orchestrator("k8s")

    assert "local" in str(error.value)
    assert "docker" in str(error.value)
    assert "oakestra" in str(error.value)


def test_settings_that_do_not_fit_the_backend_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid settings for the local orchestrator"):
        create_orchestrator("local", state_dir=tmp_path, no_such_setting=1)


def test_oakestra_kind_builds_an_oakestra_orchestrator_without_calling_it() -> None:
    orchestrator = create_orchestrator(
        "oakestra", base_url="http://127.0.0.1:9", username="u", password="p"
    )
    try:
        assert isinstance(orchestrator, OakestraOrchestrator)
        assert not orchestrator.health().ok
    finally:
        orchestrator.close()


def test_local_settings_build_one_orchestrator_with_the_configured_clusters(
    tmp_path: Path,
) -> None:
    settings = Settings(orchestrator="local", data_dir=tmp_path, clusters=["edgeA", "edgeB"])

    built = orchestrators_from_settings(settings)
    try:
        assert isinstance(built.projects, LocalOrchestrator)
        assert built.stack is None  # the shared services run beside the projects'
        assert [c.name for c in built.projects.clusters()] == ["edgeA", "edgeB"]
        assert [n.name for n in built.projects.nodes()] == ["edgeAnode", "edgeBnode"]
    finally:
        built.projects.close()


@pytest.mark.parametrize(
    ("settings", "backend"),
    [
        ({"orchestrator": "docker", "docker_host": "unix:///no/such.sock"}, DockerOrchestrator),
        (
            {"orchestrator": "oakestra", "oakestra_url": "http://127.0.0.1:9",
             "oakestra_username": "u", "oakestra_password": "p"},
            OakestraOrchestrator,
        ),
    ],
)  # fmt: skip
def test_other_backends_get_a_local_orchestrator_for_the_shared_services(
    tmp_path: Path, settings: dict[str, Any], backend: type[Orchestrator]
) -> None:
    built = orchestrators_from_settings(Settings(data_dir=tmp_path, **settings))
    try:
        assert isinstance(built.projects, backend)
        assert isinstance(built.stack, LocalOrchestrator)
        assert (tmp_path / "services").is_dir()
    finally:
        built.projects.close()
        if built.stack is not None:
            built.stack.close()
