"""Pin a repo's dependencies on top of a flavour base: what the image's own layer installs.

The repo's requirements go through the same plan as on the embedded default
(`flops_core.requirements.requirement_plan.plan_requirements`): a requirement on a
distribution the base already has is dropped (the runtime wins, an `Override` is reported
when the versions differ); the rest are resolved by pip with every distribution of the
base as a constraint, so pip never replaces a runtime package and a repo whose needs
contradict the runtime's fails here with pip's explanation. The lock holds only what the
base lacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from flops_core.requirements.dependencies import DependencySpec
from flops_core.requirements.requirement_plan import Override, plan_requirements
from flops_core.requirements.runtime_probe import RuntimeDistribution
from image_builder.pip_resolver import PipSettings, resolve_requirements

__all__ = ["DependencyLock", "lock_repo_dependencies", "runtime_distributions"]


@dataclass(frozen=True)
class DependencyLock:
    """The pinned extra packages of one repo, and what was decided on the way.

    Parameters
    ----------
    requirements : tuple[str, ...]
        `name==version` lines the image installs on top of the flavour base (may be empty).
    overrides : tuple[Override, ...]
        Repo requirements the runtime's version replaced.
    warnings : tuple[str, ...]
        Things the user should know (skipped requirements, an unmet `python` pin).
    """

    requirements: tuple[str, ...]
    overrides: tuple[Override, ...] = ()
    warnings: tuple[str, ...] = ()


def runtime_distributions(
    runtime_lock: Sequence[str], *, flops_version: str
) -> dict[str, RuntimeDistribution]:
    """The flavour base's distributions by canonical name, from its lock and FLOps' version."""
    dists = {"flops": RuntimeDistribution("flops", flops_version, local=True)}
    for line in runtime_lock:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        pins = [s.version for s in requirement.specifier if s.operator == "=="]
        if pins:
            key = canonicalize_name(requirement.name)
            dists[key] = RuntimeDistribution(requirement.name, pins[0], local=False)
    return dists


def lock_repo_dependencies(
    spec: DependencySpec,
    *,
    runtime_lock: Sequence[str],
    flops_version: str,
    settings: PipSettings,
    work_dir: Path,
    markers: Mapping[str, str] | None = None,
) -> DependencyLock:
    """Decide and pin what the repo needs beyond its flavour base.

    Parameters
    ----------
    spec : DependencySpec
        The repo's dependencies (`RepoReport.dependencies`).
    runtime_lock : Sequence[str]
        `name==version` of every distribution in the flavour base.
    flops_version : str
        The FLOps version the images carry.
    settings : PipSettings
        The package indexes.
    work_dir : Path
        Scratch folder for pip's files.
    markers : Mapping[str, str] | None
        The marker environment to evaluate requirements in; default: this interpreter's
        (the images' Python is 3.11 on Linux like the builder's; markers on the machine
        type are evaluated for the builder's, and pip inside the image installs what a
        dependency needs on the other platforms).

    Raises
    ------
    DependencyResolutionError
        When pip finds no solution.
    DependencyDownloadError
        When an index cannot be reached.
    """
    env = (
        dict(markers)
        if markers is not None
        else {k: str(v) for k, v in default_environment().items()}
    )
    runtime = runtime_distributions(runtime_lock, flops_version=flops_version)
    plan = plan_requirements(spec.requirements, runtime=runtime, markers=env)
    warnings = list(spec.warnings)
    warnings += [f"{line}: environment marker does not apply, skipped" for line in plan.skipped]
    python = env.get("python_full_version", "")
    if spec.python_version and not _allows(spec.python_version, python):
        warnings.append(
            f"{spec.source_file} asks for python {spec.python_version}; images have Python "
            f"{python.rsplit('.', 1)[0]} (what the FLOps runtime needs)"
        )
    if not plan.install:
        return DependencyLock((), plan.overrides, tuple(warnings))
    resolved = resolve_requirements(
        plan.install,
        constraints=runtime_lock,
        settings=settings,
        work_dir=work_dir,
        what=spec.source_file,
    )
    in_base = {_name(line) for line in runtime_lock}
    extra = tuple(line for line in resolved if _name(line) not in in_base)
    return DependencyLock(extra, plan.overrides, tuple(warnings))


def _name(line: str) -> str:
    return canonicalize_name(line.split("==")[0].split(" @ ")[0].strip())


def _allows(specifier: str, version: str) -> bool:
    try:
        return SpecifierSet(specifier).contains(version, prereleases=True)
    except InvalidSpecifier:
        return True
