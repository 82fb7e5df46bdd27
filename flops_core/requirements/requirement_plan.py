"""Decide which of a repo's requirements to install next to the FLOps runtime, and which yield."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion

from flops_core.commands import redact_text
from flops_core.logs import get_logger
from flops_core.requirements.framework_facts import COMPANIONS, NUMPY1_RELEASES
from flops_core.requirements.runtime_probe import InterpreterInfo, RuntimeDistribution

__all__ = [
    "Override",
    "RequirementPlan",
    "environment_key",
    "plan_requirements",
]

_logger = get_logger("manager.environments")

#: Bumped when the layout of an environment or the way it is planned changes, so that old
#: ones are not reused.
LAYOUT_VERSION = 2

#: The FLOps project itself, which the runtime provides (and its old PyPI name).
_FLOPS_NAMES = frozenset({"flops", "flops-utils"})


@dataclass(frozen=True)
class Override:
    """A user requirement replaced by what the FLOps runtime has; one project event each.

    Parameters
    ----------
    name : str
        The distribution, as the user spelled it.
    requested : str
        The user's requirement, e.g. `numpy==1.26.4` (URLs redacted).
    used : str
        What the environment has instead, e.g. `numpy 2.4.6`.
    reason : str
        Why, in a few words.
    """

    name: str
    requested: str
    used: str
    reason: str

    def __str__(self) -> str:
        return f"{self.requested} overridden: using {self.used} ({self.reason})"


@dataclass(frozen=True)
class RequirementPlan:
    """What to install into a venv that already sees the FLOps runtime's packages.

    Parameters
    ----------
    install : tuple[str, ...]
        Requirement lines for `pip install -r`, normalized, markers evaluated and removed.
    overrides : tuple[Override, ...]
        User requirements the runtime's version replaced.
    satisfied : tuple[str, ...]
        User requirements an installed version already meets.
    skipped : tuple[str, ...]
        User requirements whose environment markers do not apply.
    """

    install: tuple[str, ...] = ()
    overrides: tuple[Override, ...] = ()
    satisfied: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def install_redacted(self) -> tuple[str, ...]:
        """`install` with credentials in URLs replaced by `***`: for keys, logs and events."""
        return tuple(redact_text(line) for line in self.install)

    @property
    def needs_pip(self) -> bool:
        """Whether some line of `install` is not met by what is installed already."""
        return any(line not in self.satisfied for line in self.install)


def plan_requirements(
    requirements: Iterable[str],
    *,
    runtime: Mapping[str, RuntimeDistribution],
    markers: Mapping[str, str],
    installed: Mapping[str, RuntimeDistribution] | None = None,
) -> RequirementPlan:
    """Compare each requirement with what the runtime fixes; the runtime's fixed versions win.

    A requirement on a distribution in `runtime` (what the runtime never lets change) is
    dropped: silently when the runtime's version satisfies it, as an `Override` when it does
    not (e.g. `mlflow<3` against 3.17.2); a satisfied one with extras is kept without its
    version, so that pip adds only the extras' dependencies. Every other requirement is
    kept for pip, and listed in `satisfied` too when `installed` already meets it.
    Requirements whose markers do not apply are dropped. Lines that are not PEP 508 (paths,
    URLs without a name) are kept as written.

    Parameters
    ----------
    requirements : Iterable[str]
        The repo's requirement strings (`DependencySpec.requirements`).
    runtime : Mapping[str, RuntimeDistribution]
        The distributions whose versions the runtime fixes, by canonical name.
    markers : Mapping[str, str]
        The marker environment of the venv's interpreter.
    installed : Mapping[str, RuntimeDistribution] | None
        Everything the venv imports already, by canonical name; default: `runtime`.

    Returns
    -------
    RequirementPlan
        What to install and what was overridden, satisfied or skipped.
    """
    seen = installed if installed is not None else runtime
    install: list[str] = []
    overrides: list[Override] = []
    satisfied: list[str] = []
    skipped: list[str] = []
    for line in requirements:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            _add(install, line)
            continue
        if requirement.marker is not None and not requirement.marker.evaluate(dict(markers)):
            skipped.append(line)
            continue
        requirement.marker = None
        key = canonicalize_name(requirement.name)
        dist = runtime.get("flops" if key in _FLOPS_NAMES else key)
        used = f"{dist.name} {dist.version}" if dist is not None else "the FLOps runtime"
        if key in _FLOPS_NAMES:
            reason = "FLOps itself is provided by the runtime"
        elif dist is None:
            kept = line if requirement.url else _normalized(requirement)
            _add(install, kept)
            have = seen.get(key)
            if have is not None and not requirement.url and _contains(requirement, have.version):
                _add(satisfied, kept)
            continue
        elif requirement.url:
            reason = "the FLOps runtime needs its own build"
        elif _contains(requirement, dist.version):
            satisfied.append(line)
            if requirement.extras:
                _add(install, f"{key}[{','.join(sorted(requirement.extras))}]")
            continue
        else:
            reason = "the FLOps runtime needs this version"
        requested = redact_text(str(requirement))
        overrides.append(Override(requirement.name, requested, used, reason))
        _logger.debug("override: %s", overrides[-1])
    return RequirementPlan(tuple(install), tuple(overrides), tuple(satisfied), tuple(skipped))


def environment_key(
    install: Sequence[str],
    *,
    interpreter: InterpreterInfo,
    runtime_fingerprint: str,
    pip_args: Sequence[str],
    runtime_lines: Sequence[str] = (),
) -> str:
    """A short hash naming the environment: the same inputs always give the same venv.

    Parameters
    ----------
    install : Sequence[str]
        The requirement lines to install, credentials redacted (order does not matter).
    interpreter : InterpreterInfo
        The venv's interpreter; its path and version count.
    runtime_fingerprint : str
        `InterpreterInfo.fingerprint()` of the FLOps runtime.
    pip_args : Sequence[str]
        Extra pip arguments (indexes, find-links), which can change what gets installed.
    runtime_lines : Sequence[str]
        The runtime's own requirement lines (`RuntimeRequirements.lines`), resolved with
        the repo's; the NumPy-ABI facts and companions (`framework_facts`) count as well.
    """
    payload = {
        "layout": LAYOUT_VERSION,
        "install": sorted(set(install)),
        "python": [str(interpreter.python), interpreter.version],
        "runtime": runtime_fingerprint,
        "pip_args": list(pip_args),
        "runtime_lines": list(runtime_lines),
        "facts": [dict(NUMPY1_RELEASES), {k: sorted(v) for k, v in COMPANIONS.items()}],
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    return digest[:20]


def _normalized(requirement: Requirement) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{canonicalize_name(requirement.name)}{extras}{requirement.specifier}"


def _contains(requirement: Requirement, version: str) -> bool:
    try:
        return requirement.specifier.contains(version, prereleases=True)
    except InvalidVersion:
        return False


def _add(lines: list[str], line: str) -> None:
    if line not in lines:
        lines.append(line)
