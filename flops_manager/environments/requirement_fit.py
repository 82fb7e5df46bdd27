"""Fit a repo's requirements to the FLOps runtime: resolve, add NumPy-ABI facts, relax pins.

Design. pip decides (`Resolver`, a dry run in the repo's venv): the repo's requirements are
resolved together with the runtime's own (`RuntimeRequirements.lines`). When the answer
holds a release built against NumPy 1.x next to NumPy 2 (`framework_facts`), `numpy<2` is
added and pip asked again. When pip finds no solution, the repo's version pins that pip's
explanation names are relaxed one package at a time: its other releases are tried nearest
first (by position in the release list; newer first on ties), with the repo's pins of its
companion packages lifted so that pip picks the companions matching the release tried. The
first release that resolves, or at least takes that package out of pip's explanation, is
kept, reported as a `Relaxation`, and the next named package is relaxed until everything
resolves. When no release of a named package fits, one sentence names both sides.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from flops_core.logs import get_logger
from flops_core.requirements.framework_facts import (
    NUMPY1_CONSTRAINT,
    companions_of,
    numpy1_builds,
    numpy_abi_constraints,
)
from flops_manager.environments.errors import RequirementsConflictError
from flops_manager.environments.pip_resolution import Conflict, Resolution
from flops_manager.environments.runtime_requirements import RuntimeRequirements

__all__ = ["FittedRequirements", "Relaxation", "Resolver", "fit_requirements", "nearest_first"]

_logger = get_logger("manager.environments")

_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")

#: Releases of one package tried before giving up on it.
MAX_TRIALS = 25


class Resolver(Protocol):
    """What `fit_requirements` needs of pip (`PipResolver`)."""

    def resolve(self, requirements: Sequence[str], constraints: Sequence[str]) -> Resolution:
        """What pip would install for `requirements` under `constraints`."""

    def releases(self, name: str) -> list[str]:
        """The releases of `name` installable here, oldest first."""


@dataclass(frozen=True)
class Relaxation:
    """A repo pin that could not live with the FLOps runtime, and the release used instead.

    Parameters
    ----------
    package : str
        The distribution's canonical name.
    asked : str
        The repo's requirement, e.g. `tensorflow==2.12.0`.
    got : str
        The version the environment has, e.g. `2.18.0`.
    why : str
        pip's explanation of the conflict, both sides named.
    """

    package: str
    asked: str
    got: str
    why: str

    def __str__(self) -> str:
        return f"{self.asked} relaxed to {self.package} {self.got}: {self.why}"


@dataclass(frozen=True)
class FittedRequirements:
    """What to install: the lines for pip, the extra constraints and what was relaxed.

    Parameters
    ----------
    requirements : tuple[str, ...]
        Lines for `pip install -r`: the runtime's, then the repo's (relaxed where needed).
    constraints : tuple[str, ...]
        Lines for `-c`: the runtime's (`RuntimeRequirements.constraints`), then those of
        the NumPy-ABI facts.
    relaxed : tuple[Relaxation, ...]
        The repo's pins that were relaxed, in order.
    installs : dict[str, str]
        What pip will install into the venv (canonical name → version).
    """

    requirements: tuple[str, ...]
    constraints: tuple[str, ...]
    relaxed: tuple[Relaxation, ...]
    installs: dict[str, str]


@dataclass(frozen=True)
class _Attempt:
    resolution: Resolution
    constraints: tuple[str, ...]


def fit_requirements(
    user: Sequence[str],
    *,
    runtime: RuntimeRequirements,
    installed: Mapping[str, str],
    resolver: Resolver,
) -> FittedRequirements:
    """Resolve the repo's `user` lines with the runtime's; relax pins pip cannot satisfy.

    Parameters
    ----------
    user : Sequence[str]
        The repo's requirement lines left after planning (markers applied).
    runtime : RuntimeRequirements
        The runtime's requirement lines and closure.
    installed : Mapping[str, str]
        Canonical name → version of what the venv imports already (the runtime's).
    resolver : Resolver
        pip.

    Raises
    ------
    RequirementsConflictError
        When some pin fits with no release; one sentence naming both sides.
    """
    lines = list(user)
    relaxed: list[tuple[str, str, str]] = []  # (name, asked line, why)
    attempt = _attempt(lines, runtime, installed, resolver)
    while attempt.resolution.conflict is not None:
        conflict = attempt.resolution.conflict
        done = {name for name, _, _ in relaxed}
        culprits = [i for i in _culprits(lines, conflict, runtime) if _name(lines[i]) not in done]
        if not culprits:
            raise RequirementsConflictError(_no_fit_sentence(None, conflict, runtime, 0))
        step = None
        for index in culprits:
            step = _relax(index, lines, runtime, installed, resolver)
            if step is not None:
                break
        if step is None:
            asked = lines[culprits[0]]
            tried = len(_candidates(asked, runtime, resolver))
            raise RequirementsConflictError(_no_fit_sentence(asked, conflict, runtime, tried))
        lines, attempt, changed = step
        why = _why(conflict, runtime)
        relaxed += [(name, asked, why) for name, asked in changed]
    installs = attempt.resolution.installs
    versions = {**installed, **installs}
    relaxations = tuple(
        Relaxation(name, asked, versions.get(name, "?"), why) for name, asked, why in relaxed
    )
    for relaxation in relaxations:
        _logger.info("relaxed: %s", relaxation)
    return FittedRequirements(
        (*runtime.lines, *lines), attempt.constraints, relaxations, dict(installs)
    )


def nearest_first(releases: Sequence[str], asked: str) -> list[str]:
    """The releases outside `asked`'s specifier, nearest to the ones it names first.

    Distance is the position in the release list (oldest first) from the nearest release
    the specifier matches (or from where its version would be, for `==` of a missing
    release); ties go to the newer release. Pre-releases and unreadable versions are left
    out.
    """
    requirement = Requirement(asked)
    versions: list[Version] = []
    for text in releases:
        try:
            version = Version(text)
        except InvalidVersion:
            continue
        if not version.is_prerelease:
            versions.append(version)
    versions.sort()
    inside = [i for i, v in enumerate(versions) if requirement.specifier.contains(v)]
    anchors = [float(i) for i in inside] or [_insertion(versions, requirement.specifier)]
    outside = [i for i in range(len(versions)) if i not in inside]
    outside.sort(key=lambda i: (min(abs(i - a) for a in anchors), -i))
    return [str(versions[i]) for i in outside]


def _attempt(
    lines: Sequence[str],
    runtime: RuntimeRequirements,
    installed: Mapping[str, str],
    resolver: Resolver,
) -> _Attempt:
    """Resolve, adding NumPy-ABI constraints until the answer needs no more."""
    constraints: list[str] = list(runtime.constraints)
    relevant = runtime.closure | {_name(line) for line in lines}
    builds: list[str] = []
    while True:
        resolution = resolver.resolve([*runtime.lines, *lines], constraints)
        if resolution.conflict is not None:
            if builds:  # the NumPy-1 builds are a side of the conflict too
                names = {canonicalize_name(build.split()[0]) for build in builds}
                because = f"{', '.join(builds)} (built against NumPy 1.x) need {NUMPY1_CONSTRAINT}"
                conflict = resolution.conflict
                resolution = Resolution(
                    conflict=Conflict(conflict.names | names, (*conflict.lines, because))
                )
            return _Attempt(resolution, tuple(constraints))
        versions = {k: v for k, v in installed.items() if k in relevant}
        versions.update(resolution.installs)
        extra = [c for c in numpy_abi_constraints(versions) if c not in constraints]
        if not extra:
            return _Attempt(resolution, tuple(constraints))
        builds = numpy1_builds(versions)
        _logger.info("adding %s for %s", ", ".join(extra), ", ".join(builds))
        constraints += extra


def _relax(
    index: int,
    lines: list[str],
    runtime: RuntimeRequirements,
    installed: Mapping[str, str],
    resolver: Resolver,
) -> tuple[list[str], _Attempt, list[tuple[str, str]]] | None:
    """Try other releases of `lines[index]`'s package; the first that fits, or None."""
    asked = lines[index]
    requirement = Requirement(asked)
    name = canonicalize_name(requirement.name)
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    companions = companions_of([name])
    lifted = [i for i, line in enumerate(lines) if _name(line) in companions and _pinned(line)]
    for version in _candidates(asked, runtime, resolver):
        trial = list(lines)
        trial[index] = f"{name}{extras}=={version}"
        for i in lifted:
            companion = Requirement(lines[i])
            companion.specifier = SpecifierSet()
            trial[i] = str(companion)
        attempt = _attempt(trial, runtime, installed, resolver)
        conflict = attempt.resolution.conflict
        if conflict is None or name not in conflict.names:
            _logger.info("%s does not fit; %s does", asked, trial[index])
            changed = [(name, asked), *((_name(lines[i]), lines[i]) for i in lifted)]
            return trial, attempt, changed
    return None


def _candidates(asked: str, runtime: RuntimeRequirements, resolver: Resolver) -> list[str]:
    """The releases to try instead of `asked`, nearest first, within the runtime's range."""
    name = _name(asked)
    allowed = runtime.allowed(name)
    releases = nearest_first(resolver.releases(name), asked)
    return [v for v in releases if allowed.contains(v, prereleases=True)][:MAX_TRIALS]


def _culprits(lines: Sequence[str], conflict: Conflict, runtime: RuntimeRequirements) -> list[int]:
    """Indexes of the repo's pinned lines pip names; packages outside the runtime first."""
    named = [i for i, line in enumerate(lines) if _pinned(line) and _name(line) in conflict.names]
    return sorted(named, key=lambda i: (_name(lines[i]) in runtime.closure, i))


def _why(conflict: Conflict | None, runtime: RuntimeRequirements) -> str:
    """pip's explanation with the FLOps runtime's side named as such."""
    if conflict is None:
        return "it conflicts with the FLOps runtime"
    runtime_names = {_name(line) for line in runtime.lines}
    parts = []
    for line in conflict.lines:
        if line.startswith("The user requested (constraint) "):
            what = line.removeprefix("The user requested (constraint) ")
            reason = runtime.reasons.get(_name(what))
            if reason is None:
                parts.append(f"a pip constraint requires {what}")
            else:
                parts.append(f"pip's constraints allow only {what} ({reason})")
        elif line.startswith("The user requested "):
            what = line.removeprefix("The user requested ")
            side = (
                "the FLOps runtime requires"
                if _name(what) in runtime_names
                else "the repo asks for"
            )
            parts.append(f"{side} {what}")
        else:
            words = line.split(" ", 1)
            if words and canonicalize_name(words[0]) in runtime.closure and " depends on " in line:
                parts.append(f"the FLOps runtime's {line}")
            else:
                parts.append(line)
    return "; ".join(parts) or "it conflicts with the FLOps runtime"


def _no_fit_sentence(
    asked: str | None, conflict: Conflict, runtime: RuntimeRequirements, tried: int
) -> str:
    why = _why(conflict, runtime)
    if asked is None:
        return f"the repo's requirements cannot be installed next to the FLOps runtime: {why}"
    name = _name(asked)
    tried_text = f"{tried} tried" if tried else "none available"
    return (
        f"{asked} cannot be installed next to the FLOps runtime, and no other release of "
        f"{name} fits ({tried_text}): {why}"
    )


def _insertion(versions: Sequence[Version], specifier: SpecifierSet) -> float:
    bounds = [
        s.version for s in specifier if s.operator in ("==", "===", "~=", ">=", "<=", "<", ">")
    ]
    try:
        target = Version(bounds[0].rstrip(".*")) if bounds else None
    except InvalidVersion:
        target = None
    if target is None:
        return float(len(versions))
    return sum(1 for v in versions if v < target) - 0.5


def _name(line: str) -> str:
    """The canonical name a requirement line (or pip's `numpy<3 and >=1.26`) starts with."""
    match = _NAME.match(line.strip())
    return canonicalize_name(match.group(0)) if match is not None else ""


def _pinned(line: str) -> bool:
    try:
        requirement = Requirement(line)
    except InvalidRequirement:
        return False
    return bool(requirement.specifier) and requirement.url is None
