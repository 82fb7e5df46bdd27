"""The inference image without containers: its ref, MLflow's Dockerfile adapted, its labels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flops_core.events import EventReporter
from image_builder import InferenceBuildRequest, InferenceImageJob, inference_image_ref
from image_builder.buildah import Buildah, BuildahSettings
from image_builder.cross_install import PREPARED_MARKER
from image_builder.inference_containerfile import (
    MODEL_PATH,
    adapt_dockerfile,
    missing_requirements,
    parse_generated_dockerfile,
    serving_command,
)
from image_builder.inference_image import inference_labels
from image_builder.model_source import ModelVersionInfo, generate_dockerfile
from image_builder.pip_resolver import PipSettings

#: What `mlflow models generate-dockerfile` (MLflow 3.17.2) wrote for a logged sklearn model.
GENERATED = """\
# Build an image that can serve mlflow models.
FROM python:3.11.7-slim

# Fail fast on a stalled package mirror
RUN printf '%s\\n' \\
    'Acquire::http::Timeout "30";' \\
    'Acquire::https::Timeout "30";' \\
    'Acquire::Retries "3";' \\
    > /etc/apt/apt.conf.d/99-mlflow-timeouts
RUN apt-get -y update && apt-get install -y --no-install-recommends nginx



WORKDIR /opt/mlflow

# Install MLflow
RUN pip install mlflow==3.17.2

# Copy model to image and install dependencies
COPY model_dir/model /opt/ml/model
RUN python -c "from mlflow.models import container as C; C._install_pyfunc_deps('/opt/ml/model', \
install_mlflow=False, env_manager='local');"

ENV MLFLOW_DISABLE_ENV_CREATION=True

# granting read/write access and conditional execution authority to all child directories
RUN chmod o+rwX /opt/mlflow/

# clean up apt cache to reduce image size
RUN rm -rf /var/lib/apt/lists/*

ENTRYPOINT ["python", "-c", "from mlflow.models import container as C; C._serve('local')"]
"""
BASE = "127.0.0.1:5050/flops/base-sklearn@sha256:" + "a" * 64
LOCK = ("mlflow==3.17.2", "numpy==2.4.6", "scikit-learn==1.9.1", "skops==0.16.0")


def _instructions(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize(
    ("customer", "project", "version", "expected"),
    [
        ("acme", "p1", "3", "127.0.0.1:5050/acme/p1/inference:3"),
        ("ACME Corp", "Proj_42", "12", "127.0.0.1:5050/acme-corp/proj_42/inference:12"),
    ],
)
def test_inference_image_ref(customer: str, project: str, version: str, expected: str) -> None:
    assert inference_image_ref("http://127.0.0.1:5050/", customer, project, version) == expected


def test_inference_image_ref_rejects_unusable_names() -> None:
    with pytest.raises(ValueError, match="no letters or digits"):
        inference_image_ref("127.0.0.1:5050", "---", "p1", "1")


def test_generated_dockerfile_is_parsed() -> None:
    # Execute
    generated = parse_generated_dockerfile(GENERATED)

    # Assert: continuations joined, comments gone, what pip installs collected.
    assert generated.pip_requirements == ("mlflow==3.17.2",)
    assert generated.instructions[0] == "FROM python:3.11.7-slim"
    assert any(
        "_install_pyfunc_deps" in i and "env_manager='local'" in i for i in generated.instructions
    )
    assert len(generated.instructions) == 11


def test_adapted_dockerfile_starts_from_the_base_and_serves_without_nginx_or_pip() -> None:
    # Execute
    text = adapt_dockerfile(parse_generated_dockerfile(GENERATED), base_image=BASE)

    # Assert
    assert _instructions(text) == [
        f"FROM {BASE}",
        "WORKDIR /opt/mlflow",
        f"COPY model_dir/model {MODEL_PATH}",
        "ENV MLFLOW_DISABLE_ENV_CREATION=True",
        "RUN chmod o+rwX /opt/mlflow/",
        "EXPOSE 8080",
        f"ENTRYPOINT {json.dumps(serving_command())}",
        'CMD ["--port", "8080"]',
    ]
    steps = "\n".join(_instructions(text))
    assert "nginx" not in steps and "apt-get" not in steps and "pip install" not in steps


def test_adapted_dockerfile_copies_prepared_wheels_and_runs_pip_only_where_missing() -> None:
    # Execute
    text = adapt_dockerfile(
        parse_generated_dockerfile(GENERATED),
        base_image=BASE,
        extra_requirements=["iniconfig==2.1.0"],
        prepared_arches=["arm64", "amd64"],
    )

    # Assert: the extras come before the model (cached across model versions).
    lines = _instructions(text)
    extras = lines.index("COPY prepared-${TARGETARCH}/ /opt/venv/")
    assert lines[extras - 1] == "ARG TARGETARCH"
    assert lines[extras + 1].startswith('RUN case "${TARGETARCH}" in amd64|arm64) ;; *) ')
    assert extras < lines.index(f"COPY model_dir/model {MODEL_PATH}")

    # Execute: no platform prepared
    unprepared = _instructions(
        adapt_dockerfile(
            parse_generated_dockerfile(GENERATED), base_image=BASE, extra_requirements=["x==1"]
        )
    )

    # Assert: pip installs exactly the extras, without resolving again.
    pip = next(line for line in unprepared if line.startswith("RUN "))
    assert "pip install --no-input --no-deps" in pip and "flops-extra-requirements.txt" in pip


def test_unknown_steps_of_mlflow_are_kept() -> None:
    # Prepare: e.g. Java for a Spark model
    generated = GENERATED.replace(
        "WORKDIR /opt/mlflow",
        "RUN apt-get install -y --no-install-recommends openjdk-17-jdk\nWORKDIR /opt/mlflow",
    )

    # Execute
    text = adapt_dockerfile(parse_generated_dockerfile(generated), base_image=BASE)

    # Assert
    assert "RUN apt-get install -y --no-install-recommends openjdk-17-jdk" in text


@pytest.mark.parametrize(
    ("requirements", "missing"),
    [
        (["mlflow==3.17.2", "scikit-learn==1.9.1", "numpy", "skops==0.16.0"], []),
        (["numpy>=2,<3", "# comment", "", "cloudpickle==3.1.1"], ["cloudpickle==3.1.1"]),
        (["scikit-learn==1.8.0"], ["scikit-learn==1.8.0"]),
        (["pywin32==306; sys_platform == 'win32'"], []),
        (["mlflow[gateway]==3.17.2", "-r other.txt"], ["mlflow[gateway]==3.17.2", "-r other.txt"]),
    ],
)
def test_missing_requirements(requirements: list[str], missing: list[str]) -> None:
    assert missing_requirements(requirements, LOCK) == missing


def test_labels_name_project_model_and_metrics() -> None:
    # Prepare
    model = ModelVersionInfo(
        "flops-p1",
        "4",
        "run1",
        metrics={"accuracy": 0.97, "loss": 0.1},
        tags={"flops.commit": "abc123", "flops.repo_url": "https://user:pw@git.example/r.git"},
    )

    # Execute
    labels = inference_labels(
        model=model, model_uri="models:/flops-p1@champion", project_id="p1", flops_version="0.1.0"
    )

    # Assert
    assert {
        "org.opencontainers.image.version": "4",
        "org.opencontainers.image.revision": "abc123",
        "io.flops.project": "p1",
        "io.flops.model-name": "flops-p1",
        "io.flops.model-version": "4",
        "io.flops.model-uri": "models:/flops-p1@champion",
        "io.flops.metric.accuracy": "0.97",
        "io.flops.metric.loss": "0.1",
    }.items() <= labels.items()
    assert "pw" not in labels["org.opencontainers.image.source"]


def test_mlflow_generates_what_the_adaptation_expects(tmp_path: Path) -> None:
    # Prepare: a model folder as MLflow 3.17.2 logs an sklearn model (no need to load it).
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text(
        "flavors:\n  python_function:\n    env:\n      conda: conda.yaml\n"
        "      virtualenv: python_env.yaml\n    loader_module: mlflow.sklearn\n"
        "    model_path: model.skops\n    python_version: 3.11.7\n"
        "  sklearn:\n    pickled_model: model.skops\n    serialization_format: skops\n"
        "mlflow_version: 3.17.2\n"
    )
    (model / "python_env.yaml").write_text(
        "python: 3.11.7\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n"
    )
    (model / "conda.yaml").write_text("dependencies:\n- python=3.11.7\n")
    (model / "requirements.txt").write_text("mlflow==3.17.2\nscikit-learn==1.9.1\n")
    (model / "model.skops").write_bytes(b"")

    # Execute
    generated = generate_dockerfile(model, tmp_path / "out", environ=dict(os.environ))

    # Assert: the generated file has the steps the adaptation replaces, and the model copy.
    parsed = parse_generated_dockerfile(generated)
    assert _instructions(GENERATED)[-1] in parsed.instructions  # MLflow's entrypoint
    assert parsed.pip_requirements == ("mlflow==3.17.2",)
    assert (tmp_path / "out" / "model_dir" / "model" / "MLmodel").is_file()
    adapted = adapt_dockerfile(parsed, base_image=BASE)
    assert _instructions(adapted) == _instructions(
        adapt_dockerfile(parse_generated_dockerfile(GENERATED), base_image=BASE)
    )


def test_build_inference_rejects_bad_arguments() -> None:
    # Execute
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOPS_", "MLFLOW_"))}
    result = subprocess.run(
        [
            *(sys.executable, "-m", "image_builder", "build-inference"),
            *("--tracking-uri", "http://127.0.0.1:9", "--model-uri", "models:/m@champion"),
            *("--registry", "127.0.0.1:5050", "--customer", "c", "--project-id", "p"),
            *("--flavor", "caffe"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )

    # Assert
    assert result.returncode == 2
    assert "expected one of sklearn" in result.stderr


def test_what_the_base_lacks_is_resolved_and_prepared_per_platform(
    tmp_path: Path, offline_pip: PipSettings
) -> None:
    # Prepare: a base whose lock has flopstest-a 1.0; the model also needs flopstest-b.
    request = InferenceBuildRequest(
        tracking_uri="http://127.0.0.1:9",
        model_uri="models:/m@champion",
        platforms=("linux/amd64", "linux/arm64"),
        registry="127.0.0.1:5050",
        customer="c",
        project_id="p",
        base_image=BASE,
        flavor="sklearn",
        tls_verify=False,
        work_dir=tmp_path,
    )
    reporter = EventReporter(project_id="p", source="builder", callback_url=None)
    job = InferenceImageJob(
        request,
        reporter=reporter,
        buildah=Buildah(BuildahSettings()),
        pip_settings=offline_pip,
    )
    context = tmp_path / "context"

    # Execute
    extra = job._extra_requirements(["flopstest-a", "flopstest-b==1.0"], ["flopstest-a==1.0"])
    prepared = job._prepare(extra, context)

    # Assert: only flopstest-b is added, installed for both platforms like the venv.
    assert extra == ["flopstest-b==1.0"]
    assert prepared == {"amd64", "arm64"}
    for arch in prepared:
        site = context / f"prepared-{arch}" / "lib" / "python3.11" / "site-packages"
        assert sorted(p.name.split("-")[0] for p in site.glob("*.dist-info")) == ["flopstest_b"]
        assert not (context / f"prepared-{arch}" / PREPARED_MARKER).exists()
    assert (context / "flops-extra-requirements.txt").read_text() == "flopstest-b==1.0\n"
    reporter.close()
