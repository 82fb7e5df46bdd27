"""Build (or reuse) the Python environment that runs an ML repo's learners and aggregator.

Design. On the embedded default, learners and the aggregator are local processes, and they
need two things in one interpreter: the FLOps runtime (Flower, MLflow, `flops_*` and their
hundreds of megabytes of dependencies) and whatever the repo's dependency file asks for.
Reinstalling the runtime into every environment would cost minutes and gigabytes per
environment and could end with versions other than the ones the manager was tested with.
Instead each environment is a small venv whose own site-packages holds only what the repo
needs beyond the runtime, followed on `sys.path` (through one `.pth` file) by the runtime's
site-packages and the FLOps source root. Which runtime packages a repo may not change is
decided by `runtime_requirements`: the wire-format packages (Flower, MLflow, pyarrow,
datasets) stay at the runtime's versions, and a repo requirement that contradicts one
(`mlflow<3`) is dropped beforehand and reported as an `Override`; the rest of the
runtime's needs are ranges, resolved by pip together with the repo's requirements
(`requirement_fit`), so a repo's `numpy==1.26.4` goes into its own venv and shadows the
runtime's copy, with whatever else pip needs to keep the runtime's declared requirements
true. A pin that cannot live with the runtime is relaxed to the nearest release that can
and reported as a `Relaxation`. When the runtime already satisfies every requirement, pip
is not run at all. The venv borrows the runtime's pip the same way, so creating it takes
a fraction of a second. The `.pth` file only appends folders (the runtime's own `.pth`
files do not run in the venv), which is why an editable FLOps install is covered by
appending its source root instead of relying on setuptools' import hook.

Environments are keyed by what decides their content, not by commit: the requirement
lines left after overrides, the runtime's requirement lines, the framework facts, the
interpreter and a fingerprint of the runtime (its distributions and paths), so every
commit with the same dependencies shares one environment and an upgraded runtime gets
fresh ones. `EnvironmentCache` builds each in a staging folder, writes a marker last and
renames it into place (rewriting the few absolute paths `venv` and pip put into `bin/`),
under a per-key file lock, so concurrent callers (threads or processes) build once and a
failed build leaves nothing. What was relaxed is kept in the marker and reported again
whenever the environment is reused.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from flops_core.logs import get_logger
from flops_core.requirements.dependencies import DependencySpec, read_dependencies
from flops_core.requirements.requirement_plan import (
    RequirementPlan,
    environment_key,
    plan_requirements,
)
from flops_core.requirements.runtime_probe import (
    InterpreterInfo,
    InterpreterProbeError,
    choose_interpreter,
    probe_interpreter,
)
from flops_manager.environments.built_environment import BuiltEnvironment
from flops_manager.environments.environment_cache import EnvironmentCache
from flops_manager.environments.errors import (
    RequirementsConflictError,
    RuntimeProbeError,
    UnsupportedDependenciesError,
)
from flops_manager.environments.pip_resolution import PipResolver
from flops_manager.environments.requirement_fit import Relaxation, fit_requirements
from flops_manager.environments.runtime_requirements import (
    RuntimeRequirements,
    runtime_requirements,
)
from flops_manager.environments.venv_setup import create_venv, pip_install

__all__ = ["BuiltEnvironment", "EnvironmentBuilder", "ProgressCallback"]

_logger = get_logger("manager.environments")

#: Receives one human-readable line per step of `EnvironmentBuilder.ensure`.
ProgressCallback = Callable[[str], None]

_REQUIREMENTS_NAME = "flops-requirements.txt"
_CONSTRAINTS_NAME = "flops-constraints.txt"


class EnvironmentBuilder:
    """Makes one venv per distinct set of repo dependencies, cached under `cache_dir`.

    Parameters
    ----------
    cache_dir : Path
        Where environments live (`<key>/`, `<key>.lock`); created when missing.
    runtime_python : Path
        The interpreter of the FLOps runtime, whose packages every environment imports.
    pip_timeout : float
        Seconds one `pip install` may take before the build fails (retryably).
    pip_args : Sequence[str]
        Extra `pip install` arguments, e.g. `("--index-url", url)`; the machine's pip
        configuration (`pip config list`) applies as well.
    search_path : str | None
        PATH for finding `pythonX.Y` when a repo pins Python; None: this process's PATH.
    command_timeout : float
        Seconds each other command (probing an interpreter, `python -m venv`) may take.
    """

    def __init__(
        self,
        cache_dir: Path,
        *,
        runtime_python: Path,
        pip_timeout: float,
        pip_args: Sequence[str] = (),
        search_path: str | None = None,
        command_timeout: float = 120.0,
    ) -> None:
        self._cache = EnvironmentCache(cache_dir.absolute())
        self._runtime_python = runtime_python.absolute()
        self._pip_timeout = pip_timeout
        self._pip_args = tuple(pip_args)
        self._search_path = search_path
        self._command_timeout = command_timeout
        self._runtime: InterpreterInfo | None = None
        self._runtime_lock = threading.Lock()

    def runtime(self) -> InterpreterInfo:
        """The FLOps runtime interpreter, probed on first use (then kept for this builder).

        Raises
        ------
        RuntimeProbeError
            When `runtime_python` cannot be run.
        """
        with self._runtime_lock:
            if self._runtime is None:
                try:
                    self._runtime = probe_interpreter(
                        self._runtime_python, timeout=self._command_timeout
                    )
                except InterpreterProbeError as e:
                    raise RuntimeProbeError(e.reason, output_tail=e.output_tail) from e
                _logger.info(
                    "FLOps runtime: Python %s, %d distributions, %d import paths",
                    self._runtime.version,
                    len(self._runtime.distributions),
                    len(self._runtime.paths),
                )
            return self._runtime

    def ensure(
        self,
        repo_dir: Path,
        *,
        commit: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> BuiltEnvironment:
        """Return the environment for the dependencies of the checkout `repo_dir`.

        Reuses the environment with the same key when it exists, else builds it; callers
        at the same time (threads or processes) wait for one build.

        Parameters
        ----------
        repo_dir : Path
            The repo checkout.
        commit : str | None
            The checkout's commit, for logs and the environment's metadata only.
        on_progress : ProgressCallback | None
            Called with one human-readable line per step.

        Returns
        -------
        BuiltEnvironment
            The environment, with the overrides and warnings to report.

        Raises
        ------
        DependencyError
            When the dependency file is missing or cannot be parsed (from `read_dependencies`).
        EnvironmentBuildError
            When the environment cannot be built; `retryable` tells whether to try again.
        """
        started = time.monotonic()

        label = commit[:12] if commit else repo_dir.name

        def progress(line: str) -> None:
            _logger.info("environment for %s: %s", label, line)
            if on_progress is not None:
                on_progress(line)

        progress("reading dependencies")
        spec = read_dependencies(repo_dir.absolute())
        if spec.conda_only_packages:
            raise UnsupportedDependenciesError(
                f"{spec.source_file} lists conda packages with no PyPI equivalent: "
                f"{', '.join(spec.conda_only_packages)}",
                dependency_file=spec.source_file,
            )
        runtime = self.runtime()
        interpreter, python_warnings = choose_interpreter(
            runtime, spec.python_version, search_path=self._search_path
        )
        needs = runtime_requirements(
            runtime.distributions,
            markers=interpreter.markers,
            mlflow_models=runtime.mlflow_models,
        )
        plan = plan_requirements(
            spec.requirements,
            runtime=needs.exact,
            markers=interpreter.markers,
            installed=runtime.distributions,
        )
        key = environment_key(
            plan.install_redacted,
            interpreter=interpreter,
            runtime_fingerprint=runtime.fingerprint(),
            pip_args=self._pip_args,
            runtime_lines=(*needs.lines, *needs.constraints),
        )
        reused = self._cache.is_complete(key)
        if not reused:
            waiting = f"waiting for another build of environment {key}"
            with self._cache.lock(key, on_wait=lambda: progress(waiting)):
                reused = self._cache.is_complete(key)
                if not reused:
                    self._build(
                        key, spec, plan, needs, interpreter, runtime, commit, progress, started
                    )
        if reused:
            progress(f"reusing environment {key}")
            self._cache.touch(key)
        seconds = time.monotonic() - started
        progress(f"done in {seconds:.1f} s")
        path = self._cache.path(key)
        marker = self._cache.read_marker(key)
        return BuiltEnvironment(
            path=path,
            python=path / "bin" / "python",
            key=key,
            reused=reused,
            overrides=list(plan.overrides),
            warnings=[*spec.warnings, *python_warnings],
            installed=list(marker.get("installed", plan.install_redacted)),
            relaxed=[Relaxation(**item) for item in marker.get("relaxed", [])],
            build_seconds=seconds,
            python_version=interpreter.version,
            dependency_file=spec.source_file,
        )

    def remove(self, key: str) -> bool:
        """Delete the environment `key` (waiting for a build of it); False if it did not exist."""
        return self._cache.remove(key)

    def prune(self, keep: int) -> list[str]:
        """Delete all but the `keep` most recently used environments; return their keys.

        Environments in use by running processes are not tracked here: keep at least as
        many as may be running.
        """
        return self._cache.prune(keep)

    def _build(
        self,
        key: str,
        spec: DependencySpec,
        plan: RequirementPlan,
        needs: RuntimeRequirements,
        interpreter: InterpreterInfo,
        runtime: InterpreterInfo,
        commit: str | None,
        progress: ProgressCallback,
        started: float,
    ) -> None:
        progress("creating venv")
        staging = self._cache.new_staging(key)
        try:
            must_import = [
                "flops_utils",
                "flops_core",
                "flwr",
                *([] if not runtime.has_pip else ["pip"]),
            ]
            python = create_venv(
                staging,
                python=interpreter.python,
                runtime_paths=runtime.paths,
                with_pip=not runtime.has_pip,
                must_import=must_import,
                prompt=f"flops-{key}",
                timeout=self._command_timeout,
            )
            requirements = staging / _REQUIREMENTS_NAME
            constraints = staging / _CONSTRAINTS_NAME
            requirements.touch(mode=0o600)  # URL lines may hold credentials until pip is done
            relaxed: tuple[Relaxation, ...] = ()
            installed: list[str] = []
            if plan.needs_pip:
                progress("resolving the requirements with the FLOps runtime's")
                resolver = PipResolver(
                    python,
                    pip_args=self._pip_args,
                    timeout=self._pip_timeout,
                    dependency_file=spec.source_file,
                )
                try:
                    fitted = fit_requirements(
                        plan.install,
                        runtime=needs,
                        installed={k: d.version for k, d in runtime.distributions.items()},
                        resolver=resolver,
                    )
                except RequirementsConflictError as e:
                    raise RequirementsConflictError(
                        f"{spec.source_file}: {e}", dependency_file=spec.source_file
                    ) from e
                relaxed = fitted.relaxed
                for relaxation in relaxed:
                    progress(f"relaxed {relaxation}")
                installed = [f"{k}=={v}" for k, v in sorted(fitted.installs.items())]
                _write_lines(requirements, fitted.requirements)
                _write_lines(constraints, fitted.constraints)
                count = len(fitted.installs)
                progress(f"installing {count} package{'s' if count != 1 else ''}")
                pip_install(
                    python,
                    requirements_file=requirements,
                    constraints_file=constraints,
                    pip_args=self._pip_args,
                    timeout=self._pip_timeout,
                    dependency_file=spec.source_file,
                )
                _write_lines(requirements, plan.install_redacted)  # pip is done with secrets
            marker = {
                "key": key,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "commit": commit,
                "dependency_file": spec.source_file,
                "python": str(interpreter.python),
                "python_version": interpreter.version,
                "runtime_python": str(runtime.python),
                "runtime_fingerprint": runtime.fingerprint(),
                "requirements": list(plan.install_redacted),
                "installed": installed,
                "overrides": [asdict(o) for o in plan.overrides],
                "relaxed": [asdict(r) for r in relaxed],
                "build_seconds": round(time.monotonic() - started, 3),
            }
            self._cache.publish(key, staging, marker)
        except BaseException:
            _logger.warning("build of environment %s failed; removing %s", key, staging)
            self._cache.discard(staging)
            raise
        _logger.info(
            "built environment %s (commit %s, %d requirements, %d overrides, %d relaxed)",
            key,
            commit or "unknown",
            len(plan.install),
            len(plan.overrides),
            len(relaxed),
        )


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
