"""Timed, reported build steps: shared by the project image build and the inference image build.

Each step runs inside `StepTimer.step(name)`; its duration is recorded and reported as a
`step_completed` event (with whatever the step put into the yielded dict), and any failure
becomes a `BuildStepError` naming the step: FLOps errors keep their reason, anything else
is reported as an internal error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flops_core.errors import FlopsError
from flops_core.events import EventReporter, EventType
from flops_core.logs import get_logger
from image_builder.errors import BuildStepError, ImageBuilderError

__all__ = ["StepTimer"]

_log = get_logger("image_builder")


class StepTimer:
    """Times the steps of one job and reports each as a `step_completed` event.

    Parameters
    ----------
    reporter : EventReporter
        Receives the `step_completed` events.
    project_id : str
        On every log line.
    first_step : str
        The step named in a failure that happens before any step started.
    """

    def __init__(self, reporter: EventReporter, *, project_id: str, first_step: str) -> None:
        self.timings: dict[str, float] = {}
        self.current = first_step
        self._reporter = reporter
        self._project_id = project_id

    @contextmanager
    def step(self, step: str) -> Iterator[dict[str, Any]]:
        """Run one step; the yielded dict's items are added to its `step_completed` event.

        Raises
        ------
        BuildStepError
            When the step fails.
        """
        info: dict[str, Any] = {}
        self.current = step
        started = time.monotonic()
        _log.info("project=%s step %s started", self._project_id, step)
        try:
            yield info
        except BuildStepError:
            raise
        except FlopsError as e:
            self.timings[step] = round(time.monotonic() - started, 3)
            _log.error("project=%s step %s failed: %s", self._project_id, step, e.reason)
            raise BuildStepError(step, e) from e
        except Exception as e:
            self.timings[step] = round(time.monotonic() - started, 3)
            _log.exception("project=%s step %s failed unexpectedly", self._project_id, step)
            cause = ImageBuilderError(
                f"internal error in the image builder: {type(e).__name__}: {e}"
            )
            raise BuildStepError(step, cause) from e
        seconds = round(time.monotonic() - started, 3)
        self.timings[step] = seconds
        _log.info("project=%s step %s done in %.1f s", self._project_id, step, seconds)
        self._reporter.report(EventType.STEP_COMPLETED, step=step, duration_s=seconds, **info)
