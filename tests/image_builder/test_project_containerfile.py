"""Rendered Containerfiles: layers ordered for the cache, labels, and the default command."""

from __future__ import annotations

import json

import pytest

from image_builder.project_containerfile import image_labels, render_project_containerfile

BASE = "127.0.0.1:5050/flops/base-sklearn@sha256:" + "0" * 64
LABELS = image_labels(
    source="https://***@git.example.com/o/repo.git",
    revision="9ffdced4050152457c4d62f9e52d1cf69eedeef4",
    version="0.1.0",
    flavor="sklearn",
)


def _instructions(text: str) -> list[str]:
    joined = text.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and line[0] != "#"]


def _render(role: str = "learner", *, install: bool = True) -> str:
    return render_project_containerfile(
        base=BASE, role=role, labels=LABELS, install_requirements=install
    )


def test_layers_go_from_base_to_dependencies_to_runtime_to_user_code() -> None:
    # Execute
    lines = _instructions(_render())

    # Assert
    keywords = [line.split()[0] for line in lines]
    assert keywords == ["FROM", "COPY", "RUN", "COPY", "ENV", "WORKDIR", "COPY", "LABEL", "CMD"]
    assert lines[0] == f"FROM {BASE}"
    assert lines[1] == "COPY flops-requirements.lock /opt/flops/requirements.lock"
    assert "pip install" in lines[2]
    assert "-r /opt/flops/requirements.lock -c /opt/venv/flops-runtime.lock" in lines[2]
    assert lines[3] == "COPY flops-runtime/ /opt/flops/runtime/"
    assert lines[4] == "ENV PYTHONPATH=/opt/flops/runtime"
    assert lines[5:7] == ["WORKDIR /app", "COPY app/ /app/"]


def test_without_extra_requirements_there_is_no_dependency_layer() -> None:
    # Execute
    lines = _instructions(_render(install=False))

    # Assert
    keywords = [line.split()[0] for line in lines]
    assert keywords == ["FROM", "COPY", "ENV", "WORKDIR", "COPY", "LABEL", "CMD"]


def test_labels_and_commands() -> None:
    # Execute
    learner = _render("learner")
    aggregator = _render("aggregator")

    # Assert: one LABEL with the OCI labels, quoted; only the last instruction differs.
    label = next(line for line in _instructions(learner) if line.startswith("LABEL"))
    for key, value in LABELS.items():
        assert f"{key}={json.dumps(value)}" in label
    assert set(LABELS) == {
        "org.opencontainers.image.source",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.version",
        "io.flops.flavor",
    }
    assert _instructions(learner)[-1] == 'CMD ["python", "-m", "flops_learner"]'
    assert _instructions(aggregator)[-1] == 'CMD ["python", "-m", "flops_aggregator"]'
    assert _instructions(learner)[:-1] == _instructions(aggregator)[:-1]
    assert "ENTRYPOINT" not in learner


def test_unknown_role_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown image role"):
        _render("server")
