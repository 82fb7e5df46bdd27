"""What the image stage makes of the builder's events: images, or a failure users can act on."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from flops_manager.core.config import Settings
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


def test_the_builder_gets_the_cache_limit_and_its_prunes_are_one_line_each(
    tmp_path: Any,
) -> None:
    # Prepare
    settings = ImageSettings.from_settings(Settings(builder_cache_max_mb=1500), version="1.0")
    stage, store = _stage(tmp_path)
    pruned = {
        "type": "cache_pruned",
        "data": {"bytes_before": 2_345_000_000, "bytes_after": 812_000_000,
                 "limit_bytes": 1_000_000_000, "removed": ["a1b2c3d4e5f6", "r/base@sha256:1"],
                 "duration_s": 4.06, "skipped": None},
    }  # fmt: skip
    busy = {
        "type": "cache_pruned",
        "data": {"bytes_before": 2_345_000_000, "bytes_after": 2_345_000_000,
                 "limit_bytes": 1_000_000_000, "removed": [], "duration_s": 1.2,
                 "skipped": "another build is using the cache"},
    }  # fmt: skip
    warning = {"type": "warning", "data": {"reason": "pruning the image builder's cache failed: x"}}

    # Execute
    spec = ImageStage(
        settings=settings, orchestrator=stage.orchestrator, store=store,  # type: ignore[arg-type]
        deploy=lambda spec: "unused", events=queue.Queue(), check_cancelled=lambda: None,
    ).builder_spec("b1", ["python"], {})  # fmt: skip
    for event in (pruned, busy, warning):
        assert stage._on_event(event) is None

    # Assert
    assert spec.env["FLOPS_BUILDER_CACHE_MAX_MB"] == "1500"
    assert [event[:2] for event in store.events] == [
        ("build_cache_pruned", "build cache pruned from 2.3 GB to 812.0 MB (limit 1.0 GB) in "
         "4.1 s: 2 images removed"),
        ("build_cache_pruned", "build cache is 2.3 GB, over its limit of 1.0 GB; not pruned: "
         "another build is using the cache"),
        ("warning", "image builder: pruning the image builder's cache failed: x"),
    ]  # fmt: skip
    stage.orchestrator.close()
