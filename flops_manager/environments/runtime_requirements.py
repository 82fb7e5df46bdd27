"""What the FLOps runtime itself needs in an environment: exact wire packages, ranges for the rest.

Design. An environment sees the FLOps runtime's packages, but must only keep the ones the
runtime cannot do without: the closure of the `flops` distribution's own `Requires-Dist`
(no extras) through the installed distributions' `Requires-Dist`. Everything else installed
next to the runtime (development extras such as a CPU build of torch, test tools) belongs
to nobody's contract: a repo may ask for other versions of those, which then go into its
own venv and shadow the runtime's copy.

Inside the closure, the packages that decide what crosses the wire between learners,
aggregator, data servers and MLflow (`WIRE_PACKAGES`) stay at exactly the runtime's
versions; a repo pinning another version of one of those is overridden. FLOps' other
direct requirements become ranges (`requirement_lines`): what FLOps' own code works with,
not the one version the manager was installed with. pip then resolves the repo's
requirements together with these lines, so it checks every runtime distribution's own
`Requires-Dist` (e.g. pandas 3.1 needs numpy>=2.0.2) and installs, into the repo's venv
only, whatever other versions a repo's pins need (numpy 1.26.4, and a pandas that works
with it): the runtime's installation is never modified.

MLflow logs a model with its framework's flavor module, which works only with the
framework releases MLflow supports; MLflow ships that table (`ml_package_versions.py`) but
no `Requires-Dist` for it (mlflow.pytorch 3.17 imports `torch.export.Dim`, which torch
2.1 lacks). For the frameworks of FLOps' flavors, the oldest supported release becomes a
constraint (`constraints`): it applies only where the framework is installed at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from flops_core.requirements.runtime_probe import RuntimeDistribution

__all__ = [
    "FLAVORS",
    "FLOPS_NAMES",
    "OWN_RANGES",
    "WIRE_PACKAGES",
    "RuntimeRequirements",
    "runtime_requirements",
]

#: The FLOps project itself, which the runtime provides (and its old PyPI name).
FLOPS_NAMES = frozenset({"flops", "flops-utils"})

#: Packages whose version decides the wire format (Flower messages, Arrow tables and
#: Hugging Face datasets on the data plane, MLflow's tracking API): always the runtime's.
WIRE_PACKAGES = frozenset({"flwr", "mlflow", "pyarrow", "datasets"})

#: The MLflow flavors FLOps logs models with (`ml_model_flavor`).
FLAVORS = ("sklearn", "pytorch", "tensorflow", "keras")

#: Ranges of FLOps' direct requirements that are wider than "the same major release"
#: (`_same_series`). numpy: FLOps' code uses only API common to 1.26 and 2.x, and Flower
#: accepts numpy>=1.26,<3. pandas: not used by the learner/aggregator code at all; 2.2.2
#: is the first release whose wheels run with both NumPy majors.
OWN_RANGES: Mapping[str, str] = {"numpy": ">=1.26,<3", "pandas": ">=2.2.2,<4"}


@dataclass(frozen=True)
class RuntimeRequirements:
    """The runtime's needs, ready for planning and for pip.

    Parameters
    ----------
    lines : tuple[str, ...]
        Requirement lines for pip, one per direct requirement of FLOps: `flwr==1.41.0` for
        wire packages, `numpy>=1.26,<3` etc. for the rest. Sorted.
    closure : frozenset[str]
        Canonical names of every distribution the runtime needs (FLOps included).
    exact : Mapping[str, RuntimeDistribution]
        The wire packages (and FLOps itself), which a repo can never change.
    constraints : tuple[str, ...]
        Lines for pip's `-c`: the oldest framework releases MLflow logs models of, e.g.
        `torch>=2.5.0`. Sorted.
    reasons : Mapping[str, str]
        Canonical name → why the runtime constrains it, for messages.
    """

    lines: tuple[str, ...]
    closure: frozenset[str]
    exact: Mapping[str, RuntimeDistribution]
    constraints: tuple[str, ...] = ()
    reasons: Mapping[str, str] = field(default_factory=dict)

    def allowed(self, name: str) -> SpecifierSet:
        """The versions of `name` (canonical) the runtime's lines and constraints allow."""
        allowed = SpecifierSet()
        for line in (*self.lines, *self.constraints):
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) == name:
                allowed &= requirement.specifier
        return allowed


def runtime_requirements(
    distributions: Mapping[str, RuntimeDistribution],
    *,
    markers: Mapping[str, str],
    mlflow_models: Mapping[str, tuple[str, str]] | None = None,
) -> RuntimeRequirements:
    """Derive the runtime's requirements from its installed distributions' metadata.

    Without a `flops` distribution (FLOps run from a source folder), the wire packages
    stand for FLOps' direct requirements.

    Parameters
    ----------
    distributions : Mapping[str, RuntimeDistribution]
        The runtime interpreter's distributions by canonical name, with `requires`.
    markers : Mapping[str, str]
        The marker environment of the venv's interpreter.
    mlflow_models : Mapping[str, tuple[str, str]] | None
        MLflow flavor → (distribution, oldest release MLflow logs models of)
        (`InterpreterInfo.mlflow_models`).
    """
    flops = distributions.get("flops")
    direct = (
        _applicable(flops.requires, markers, ())
        if flops is not None
        else [Requirement(name) for name in sorted(WIRE_PACKAGES) if name in distributions]
    )
    closure = _closure(direct, distributions, markers)
    closure |= {name for name in FLOPS_NAMES if name in distributions}
    lines: dict[str, str] = {}
    exact: dict[str, RuntimeDistribution] = {
        key: dist for key, dist in distributions.items() if key in FLOPS_NAMES
    }
    for requirement in direct:
        key = canonicalize_name(requirement.name)
        dist = distributions.get(key)
        if key in WIRE_PACKAGES and dist is not None and not dist.local:
            exact[key] = dist
            lines[key] = f"{key}=={dist.version}"
        else:
            specifier = OWN_RANGES.get(key) or _same_series(requirement)
            lines[key] = f"{key}{specifier}"
    constraints: dict[str, str] = {}
    reasons: dict[str, str] = {}
    mlflow = distributions.get("mlflow")
    for flavor in FLAVORS:
        package, minimum = (mlflow_models or {}).get(flavor, ("", ""))
        if package and mlflow is not None:
            key = canonicalize_name(package)
            constraints[key] = f"{key}>={minimum}"
            reasons[key] = f"MLflow {mlflow.version} logs {flavor} models of {key}>={minimum} only"
    return RuntimeRequirements(
        tuple(sorted(lines.values())),
        frozenset(closure),
        exact,
        tuple(sorted(constraints.values())),
        reasons,
    )


def _closure(
    direct: list[Requirement],
    distributions: Mapping[str, RuntimeDistribution],
    markers: Mapping[str, str],
) -> set[str]:
    seen: dict[str, set[str]] = {}
    todo = [(canonicalize_name(r.name), frozenset(r.extras)) for r in direct]
    while todo:
        key, extras = todo.pop()
        known = seen.get(key)
        if known is not None and extras <= known:
            continue
        seen.setdefault(key, set()).update(extras)
        dist = distributions.get(key)
        if dist is None:
            continue
        for requirement in _applicable(dist.requires, markers, extras):
            todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return set(seen)


def _applicable(
    lines: tuple[str, ...], markers: Mapping[str, str], extras: frozenset[str] | tuple[()]
) -> list[Requirement]:
    """The requirements among `lines` that apply here, with the given extras requested."""
    found = []
    for line in lines:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is None or any(
            requirement.marker.evaluate({**markers, "extra": extra}) for extra in ("", *extras)
        ):
            found.append(requirement)
    return found


def _same_series(requirement: Requirement) -> str:
    """`==2.14.3` → `>=2.14.3,<3`; `==0.20.1` → `>=0.20.1,<0.21`; anything else as written.

    A pin of FLOps' own requirement is the version FLOps was tested with: later releases
    of the same series (semantic versioning) are accepted, earlier ones are not.
    """
    pins = [s.version for s in requirement.specifier if s.operator == "=="]
    if len(pins) != 1:
        return str(requirement.specifier)
    try:
        release = Version(pins[0]).release
    except InvalidVersion:
        return str(requirement.specifier)
    major = release[0]
    upper = f"{major + 1}" if major > 0 or len(release) < 2 else f"0.{release[1] + 1}"
    return f">={pins[0]},<{upper}"
