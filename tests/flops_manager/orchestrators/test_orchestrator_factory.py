"""`create_orchestrator`: known kinds build their backend, others fail with the valid kinds."""

from pathlib import Path

import pytest

from flops_manager.orchestrators import (
    LocalOrchestrator,
    OakestraOrchestrator,
    create_orchestrator,
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
