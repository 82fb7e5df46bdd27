"""What the image stage makes of the builder's events: images, or a failure users can act on."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from flops_manager.lifecycle.image_stage import BuildFailure, ImageSettings, ImageStage
from flops_manager.orchestrators import LocalOrchestrator


class RecordingStore:
    """Stands in for ProjectStore: keeps the events the stage records."""

    project_id = "p1"

    def __init__(self) -> None:
        self.events: list[tuple[str, str, dict[str, Any]]] = []

    def event(self, event_type: str, message: str = "", **fields: Any) -> None:
        self.events.append((event_type, message, fields))


def _stage(tmp_path: Any) -> tuple[ImageStage, RecordingStore]:
    store = RecordingStore()
    settings = ImageSettings("127.0.0.1:5050", False, "base", "builder")
    stage = ImageStage(
        settings=settings, orchestrator=LocalOrchestrator(state_dir=tmp_path), store=store,  # type: ignore[arg-type]
        deploy=lambda spec: "unused", events=queue.Queue(), check_cancelled=lambda: None,
    )  # fmt: skip
    return stage, store


def test_steps_are_recorded_and_success_gives_the_images(tmp_path: Any) -> None:
    stage, store = _stage(tmp_path)
    step = {"type": "step_completed", "data": {"step": "build", "duration_s": 3.25}}
    images = {"learner": "r/l@sha256:1", "aggregator": "r/a@sha256:2"}

    assert stage._on_event(step) is None
    assert stage._on_event({"type": "succeeded", "data": {"images": images}}) == images
    assert store.events[0][:2] == ("build_step", "build done in 3.2 s")
    stage.orchestrator.close()


def test_a_failure_names_the_step_the_reason_and_the_output(tmp_path: Any) -> None:
    stage, _ = _stage(tmp_path)
    failed = {
        "type": "failed",
        "data": {"step": "resolve", "reason": "pip cannot resolve iniconfig==0.0.1",
                 "output": ["", "ERROR: No matching distribution found for iniconfig==0.0.1"]},
    }  # fmt: skip

    with pytest.raises(BuildFailure) as error:
        stage._on_event(failed)

    assert str(error.value) == (
        "image build failed at step resolve: pip cannot resolve iniconfig==0.0.1: "
        "ERROR: No matching distribution found for iniconfig==0.0.1"
    )
    with pytest.raises(BuildFailure, match="incomplete images"):
        stage._on_event({"type": "succeeded", "data": {"images": {"learner": "x"}}})
    stage.orchestrator.close()
