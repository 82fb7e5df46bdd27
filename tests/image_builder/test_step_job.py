"""`StepJob` as the inference build runs it: the kind on every outcome event, the failed step."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flops_core.events import EventReporter
from image_builder.buildah import Buildah, BuildahSettings
from image_builder.errors import BuildStepError
from image_builder.inference_image import InferenceBuildRequest, InferenceImageJob
from image_builder.pip_resolver import PipSettings
from tests.conftest import EventReceiver


def test_an_inference_build_that_fails_at_resolve_reports_started_and_failed_with_its_kind(
    tmp_path: Path, events: EventReceiver
) -> None:
    # Prepare: a model URI that names no registered model fails the first step.
    request = InferenceBuildRequest(
        tracking_uri="http://127.0.0.1:9",
        model_uri="runs:/abc/model",
        platforms=("linux/amd64",),
        registry="127.0.0.1:5050",
        customer="c",
        project_id="p",
        base_image="127.0.0.1:5050/flops/debian-python:bookworm",
        flavor="sklearn",
        tls_verify=False,
        work_dir=tmp_path,
    )
    reporter = EventReporter(project_id="p", source="builder", callback_url=events.url)
    job = InferenceImageJob(
        request, reporter=reporter, buildah=Buildah(BuildahSettings()), pip_settings=PipSettings()
    )

    # Execute
    with pytest.raises(BuildStepError) as raised:
        job.run()
    reporter.close()

    # Assert
    assert raised.value.step == "resolve"
    failed = events.wait_for("failed", timeout=10)
    started = events.of_type("started")[0]
    assert started["data"] == {
        "kind": "inference",
        "model_uri": "runs:/abc/model",
        "platforms": ["linux/amd64"],
    }
    assert failed["data"]["kind"] == "inference"
    assert failed["data"]["step"] == "resolve"
    assert "is not a registered model" in failed["data"]["reason"]
    assert set(failed["data"]["timings"]) == {"resolve"}
    assert not events.of_type("succeeded")


def test_build_inference_that_fails_at_a_step_exits_1_naming_it_and_removes_its_work_folder(
    tmp_path: Path, events: EventReceiver
) -> None:
    # Prepare
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOPS_", "MLFLOW_"))}
    env["FLOPS_CALLBACK_URL"] = events.url

    # Execute
    result = subprocess.run(
        [
            *(sys.executable, "-m", "image_builder", "build-inference"),
            *("--tracking-uri", "http://127.0.0.1:9", "--model-uri", "runs:/abc/model"),
            *("--registry", "127.0.0.1:5050", "--customer", "c", "--project-id", "p"),
            *("--work-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )

    # Assert
    assert result.returncode == 1
    assert "inference image build failed at step resolve: 'runs:/abc/model'" in result.stderr
    assert events.wait_for("failed", timeout=10)["data"]["step"] == "resolve"
    assert list(tmp_path.iterdir()) == []
