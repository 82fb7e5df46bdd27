"""`StepJob`: what the project image build and the inference image build share.

Both run a fixed sequence of timed steps (`StepTimer`) and report them the same way:
`started`, a `step_completed` per step, then `succeeded`, or `failed` naming the step. While
the steps run, Buildah's storage is held (`BuildCache.in_use`); afterwards the job's
manifest lists are removed and the storage pruned to the cache limit, before the last event
(the manager stops listening once it has the outcome). A subclass says what its events carry
and runs its steps; this class runs the job around them and holds the helpers both use
(flavour base builds, the pip configuration mounted into build steps, the push check).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from flops_core.events import EventReporter, EventType
from flops_core.flops_tree import FlopsTree
from flops_core.logs import get_logger
from flops_core.registry_client import RegistryClient
from image_builder.build_request import JobRequest
from image_builder.build_steps import StepTimer
from image_builder.buildah import Buildah
from image_builder.errors import BuildStepError
from image_builder.flavor_base import FlavorBase, FlavorBaseSpec, build_flavor_base
from image_builder.pip_resolver import PipSettings
from image_builder.storage_prune import BuildCache

__all__ = ["JobResult", "StepJob"]

_log = get_logger("image_builder")

_STOPPED = "the image build was stopped (cancelled or the builder was shut down)"


class JobResult(Protocol):
    """What every build result names: the platforms built and each step's seconds."""

    @property
    def platforms(self) -> tuple[str, ...]: ...
    @property
    def timings(self) -> dict[str, float]: ...


RequestT = TypeVar("RequestT", bound=JobRequest)
ResultT = TypeVar("ResultT", bound=JobResult)


class StepJob(ABC, Generic[RequestT, ResultT]):
    """Runs the steps of one build job and reports them.

    Parameters
    ----------
    request : RequestT
        What to build.
    reporter : EventReporter
        Receives `started`, `step_completed`, `succeeded` / `failed`.
    buildah : Buildah
        The Buildah adapter.
    pip_settings : PipSettings
        Package indexes, for resolving and for builds.
    tree : FlopsTree | None
        The FLOps tree; default: the one this package belongs to.
    cache : BuildCache | None
        Buildah's storage, held during the build and pruned after it; None: neither.
    """

    #: The step a failure before any step started is reported at.
    first_step: ClassVar[str]
    #: Fields the `started`, `succeeded` and `failed` events carry first (e.g. the kind).
    event_fields: ClassVar[Mapping[str, Any]] = {}
    #: Where the job's own log lines go.
    _log: ClassVar[logging.Logger] = _log

    def __init__(
        self,
        request: RequestT,
        *,
        reporter: EventReporter,
        buildah: Buildah,
        pip_settings: PipSettings,
        tree: FlopsTree | None = None,
        cache: BuildCache | None = None,
    ) -> None:
        self.request = request
        self._reporter = reporter
        self._buildah = buildah
        self._pip = pip_settings
        self._tree = tree
        self._cache = cache
        self._steps = StepTimer(reporter, project_id=request.project_id, first_step=self.first_step)
        self._manifests: list[str] = []

    def run(self) -> ResultT:
        """Run every step; report and raise `BuildStepError` on the first failure."""
        self._reporter.report(EventType.STARTED, **self.event_fields, **self._started_fields())
        result: ResultT | None = None
        failure: BuildStepError | None = None
        with self._cache.in_use() if self._cache else nullcontext():
            try:
                result = self._run_steps()
            except BuildStepError as e:
                failure = e
            except (KeyboardInterrupt, SystemExit):  # SIGTERM or Ctrl-C: Buildah is killed
                self._failed(self._steps.current, _STOPPED, [])
                raise
            finally:
                for manifest in self._manifests:
                    self._buildah.remove_manifest(manifest)
            if self._cache:
                self._cache.prune()  # before the last event: the manager stops listening then
        if failure is not None:
            self._failed(failure.step, failure.reason, failure.output)
            raise failure
        assert result is not None
        self._reporter.report(
            EventType.SUCCEEDED,
            **self.event_fields,
            **self._succeeded_fields(result),
            platforms=list(result.platforms),
            timings=result.timings,
        )
        return result

    @abstractmethod
    def _started_fields(self) -> dict[str, Any]:
        """What the `started` event says about the job."""

    @abstractmethod
    def _run_steps(self) -> ResultT:
        """Run the steps, each inside `self._steps.step(name)`."""

    @abstractmethod
    def _succeeded_fields(self, result: ResultT) -> dict[str, Any]:
        """What the `succeeded` event says about `result` besides its platforms and timings."""

    def _failed(self, step: str, reason: str, output: Sequence[str]) -> None:
        self._reporter.report(
            EventType.FAILED,
            **self.event_fields,
            step=step,
            reason=reason,
            output=list(output),
            timings=self._steps.timings,
        )

    def _new_manifest(self, name: str) -> str:
        """Remember the manifest list `name`, removed when the job ends; return it."""
        self._manifests.append(name)
        return name

    def _build_base(self, spec: FlavorBaseSpec, runtime_lock: tuple[str, ...]) -> FlavorBase:
        """Build and push the flavour base `spec` with the runtime pinned to `runtime_lock`."""
        req = self.request
        self._log.info("project=%s building flavour base %s", req.project_id, spec.ref)
        return build_flavor_base(
            spec,
            lock=runtime_lock,
            platforms=req.platforms,
            buildah=self._buildah,
            settings=self._pip,
            registry=req.registry,
            work_dir=req.work_dir / "base",
        )

    def _pip_volumes(self) -> list[tuple[Path, str]]:
        """The pip configuration (indexes, possibly with credentials) mounted into build steps."""
        conf = self._pip.pip_conf()
        if not conf:
            return []
        path = self.request.work_dir / "pip.conf"
        path.touch(mode=0o600)
        path.write_text(conf, encoding="utf-8")
        return [(path, "/etc/pip.conf")]

    def _ping_registry(self) -> None:
        """Check that the registry answers before pushing to it."""
        with RegistryClient(self.request.registry, tls_verify=self.request.tls_verify) as client:
            client.ping()
