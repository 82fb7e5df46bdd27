"""`create_orchestrator`: known kinds build their backend, others fail with the valid kinds."""

from pathlib import Path

import pytest

from flops_manager.orchestrators import LocalOrchestrator, create_orchestrator


@pytest.mark.parametrize("kind", ["local", " Local "])
def test_local_kind_builds_a_local_orchestrator(tmp_path: Path, kind: str) -> None:
    orchestrator = create_orchestrator(kind, state_dir=tmp_path)
    try:
        assert isinstance(orchestrator, LocalOrchestrator)
        assert orchestrator.health().ok
    finally:
        orchestrator.close()


@pytest.mark.parametrize(("kind", "says"), [("oakestra", "planned"), ("k8s", "unknown")])
def test_other_kinds_name_the_valid_and_planned_kinds(kind: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as error:
        create_orchestrator(kind)

    assert "local" in str(error.value)
    assert "docker" in str(error.value)
    assert "oakestra" in str(error.value)


def test_settings_that_do_not_fit_the_backend_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="invalid settings for the local orchestrator"):
        create_orchestrator("local", state_dir=tmp_path, no_such_setting=1)
