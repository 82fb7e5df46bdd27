"""Inspect a Python interpreter (the FLOps runtime, or a candidate for a repo's `python=` pin)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import canonicalize_name

from flops_core.commands import CommandTimeoutError, run_command
from flops_core.errors import FlopsError
from flops_core.logs import get_logger

__all__ = [
    "InterpreterInfo",
    "InterpreterProbeError",
    "RuntimeDistribution",
    "choose_interpreter",
    "probe_interpreter",
]


class InterpreterProbeError(FlopsError):
    """Raised when a Python interpreter cannot be run or inspected; permanent.

    `output_tail` holds the last lines of its output (credentials redacted), or "".
    """

    def __init__(self, reason: str, *, output_tail: str = "") -> None:
        super().__init__(reason, output=output_tail.splitlines())
        self.output_tail = output_tail


_logger = get_logger("manager.environments")

#: The FLOps packages a venv must be able to import from the runtime.
FLOPS_PACKAGES: tuple[str, ...] = (
    "flops_utils",
    "flops_core",
    "flops_learner",
    "flops_aggregator",
    "flops_data_server",
    "flops_manager",
)

# Runs inside the inspected interpreter: standard library only, prints one JSON object.
_PROBE = r"""
import importlib.metadata, importlib.util, json, os, platform, sys, sysconfig
iv = sys.implementation.version
impl_version = "%d.%d.%d" % (iv.major, iv.minor, iv.micro)
if iv.releaselevel != "final":
    impl_version += iv.releaselevel[0] + str(iv.serial)
markers = {
    "implementation_name": sys.implementation.name,
    "implementation_version": impl_version,
    "os_name": os.name,
    "platform_machine": platform.machine(),
    "platform_release": platform.release(),
    "platform_system": platform.system(),
    "platform_version": platform.version(),
    "python_full_version": platform.python_version(),
    "platform_python_implementation": platform.python_implementation(),
    "python_version": ".".join(platform.python_version_tuple()[:2]),
    "sys_platform": sys.platform,
}
stdlib = {os.path.realpath(sysconfig.get_path(n)) for n in ("stdlib", "platstdlib")}
def is_stdlib(path):
    real = os.path.realpath(path)
    if "site-packages" in real or "dist-packages" in real:
        return False
    return any(real == s or real.startswith(s + os.sep) for s in stdlib)
paths = []
for entry in sys.path:
    if entry and os.path.isdir(entry) and not is_stdlib(entry):
        entry = os.path.abspath(entry)
        if entry not in paths:
            paths.append(entry)
roots = []
for name in json.loads(sys.argv[1]):
    spec = importlib.util.find_spec(name)
    if spec is not None and spec.submodule_search_locations:
        root = os.path.dirname(os.path.abspath(list(spec.submodule_search_locations)[0]))
        if root not in paths and root not in roots:
            roots.append(root)
dists = []
for dist in importlib.metadata.distributions():
    name = dist.metadata["Name"]
    if not name:
        continue
    local = False
    try:
        direct = json.loads(dist.read_text("direct_url.json") or "{}")
        local = "dir_info" in direct
    except ValueError:
        pass
    dists.append([name, dist.version, local, dist.requires or []])
mlflow_models = {}
try:  # MLflow's own table of the framework releases it can log models of
    import ast
    spec = importlib.util.find_spec("mlflow")  # finds, does not import
    if spec is not None and spec.submodule_search_locations:
        folder = list(spec.submodule_search_locations)[0]
        with open(os.path.join(folder, "ml_package_versions.py"), encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", "") == "_ML_PACKAGE_VERSIONS" for t in node.targets
            ):
                for flavor, info in ast.literal_eval(node.value).items():
                    release = (info.get("package_info") or {}).get("pip_release")
                    minimum = (info.get("models") or {}).get("minimum")
                    if release and minimum:
                        mlflow_models[flavor] = [release, minimum]
except (OSError, SyntaxError, ValueError, AttributeError, TypeError):
    pass
print(json.dumps({
    "executable": sys.executable, "version": platform.python_version(), "markers": markers,
    "paths": paths, "flops_roots": roots, "distributions": dists, "mlflow_models": mlflow_models,
    "has_pip": importlib.util.find_spec("pip") is not None,
}))
"""


@dataclass(frozen=True)
class RuntimeDistribution:
    """A distribution installed in an interpreter's environment."""

    name: str
    version: str
    local: bool  # installed from a local directory (editable or not), not from an index
    requires: tuple[str, ...] = ()  # its Requires-Dist lines, markers and extras included


@dataclass(frozen=True)
class InterpreterInfo:
    """What a venv needs to know about an interpreter and the packages it can import.

    Parameters
    ----------
    python : Path
        The interpreter as it was given (a venv's `bin/python` stays the venv's).
    version : str
        Its full Python version, e.g. `3.11.7`.
    markers : dict[str, str]
        Its PEP 508 marker environment, for evaluating `; python_version < "3.12"` etc.
    paths : tuple[str, ...]
        Its import path without the standard library: site-packages first, then folders
        added by `.pth` files, then the source roots of editable FLOps packages.
    distributions : dict[str, RuntimeDistribution]
        Installed distributions by canonical name (the first one on the path wins).
    has_pip : bool
        Whether `pip` is importable, so a venv that sees these paths can borrow it.
    mlflow_models : dict[str, tuple[str, str]]
        MLflow flavor → (distribution, oldest release MLflow logs models of), from the
        installed MLflow's `ml_package_versions.py`; {} without MLflow.
    """

    python: Path
    version: str
    markers: dict[str, str]
    paths: tuple[str, ...]
    distributions: dict[str, RuntimeDistribution]
    has_pip: bool
    mlflow_models: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def minor(self) -> str:
        """`major.minor` of the version, e.g. `3.11`."""
        return ".".join(self.version.split(".")[:2])

    def fingerprint(self) -> str:
        """Hash of the version, import path and installed distributions; changes on upgrades."""
        dists = sorted(f"{d.name}=={d.version}" for d in self.distributions.values())
        payload = json.dumps([self.version, list(self.paths), dists])
        return hashlib.sha256(payload.encode()).hexdigest()


def probe_interpreter(python: Path, *, timeout: float = 60.0) -> InterpreterInfo:
    """Run `python` once to read its version, markers, import path and distributions.

    Raises
    ------
    InterpreterProbeError
        When the interpreter cannot be run or prints something unexpected.
    """
    try:
        result = run_command(
            [str(python), "-c", _PROBE, json.dumps(FLOPS_PACKAGES)],
            timeout=timeout,
            merge_output=False,
        )
    except (OSError, CommandTimeoutError) as e:
        raise InterpreterProbeError(f"cannot run the Python interpreter {python}: {e}") from e
    if result.returncode != 0:
        raise InterpreterProbeError(
            f"the Python interpreter {python} failed (exit code {result.returncode})",
            output_tail=result.tail(5),
        )
    try:
        data = json.loads(result.output)
        distributions: dict[str, RuntimeDistribution] = {}
        for name, version, local, requires in data["distributions"]:
            distributions.setdefault(
                canonicalize_name(name),
                RuntimeDistribution(name, version, bool(local), tuple(map(str, requires))),
            )
        return InterpreterInfo(
            python=python,
            version=str(data["version"]),
            markers={str(k): str(v) for k, v in data["markers"].items()},
            paths=tuple(str(p) for p in (*data["paths"], *data["flops_roots"])),
            distributions=distributions,
            has_pip=bool(data["has_pip"]),
            mlflow_models={
                str(flavor): (str(pair[0]), str(pair[1]))
                for flavor, pair in data.get("mlflow_models", {}).items()
            },
        )
    except (ValueError, KeyError, TypeError) as e:
        raise InterpreterProbeError(
            f"unexpected answer from the Python interpreter {python}"
        ) from e


def choose_interpreter(
    runtime: InterpreterInfo, requested: str | None, *, search_path: str | None = None
) -> tuple[InterpreterInfo, list[str]]:
    """Pick the interpreter for a venv: the runtime's, or one on PATH that fits a repo's pin.

    The FLOps runtime's packages (compiled for one Python minor version) are only usable
    from that minor version, so only `pythonX.Y` of the runtime's `X.Y` can replace the
    runtime's interpreter (e.g. for `>=3.11.9` when the runtime has 3.11.7). Anything else
    keeps the runtime's interpreter with a warning; this never fails.

    Parameters
    ----------
    runtime : InterpreterInfo
        The FLOps runtime interpreter.
    requested : str | None
        The repo's Python requirement as a PEP 440 specifier, or None.
    search_path : str | None
        The PATH to look for `pythonX.Y` in; None: this process's PATH.

    Returns
    -------
    tuple[InterpreterInfo, list[str]]
        The chosen interpreter, and warnings (one line each) when the pin is not met.
    """
    if requested is None:
        return runtime, []
    try:
        wanted = SpecifierSet(requested)
    except InvalidSpecifier:
        return runtime, [f"cannot read requested python {requested!r}, using {runtime.version}"]
    if wanted.contains(runtime.version, prereleases=True):
        return runtime, []
    tried: set[str] = {os.path.realpath(runtime.python)}
    for name in (f"python{runtime.minor}", f"python{runtime.minor.split('.')[0]}"):
        found = shutil.which(name, path=search_path)
        if found is None or os.path.realpath(found) in tried:
            continue
        tried.add(os.path.realpath(found))
        try:
            candidate = probe_interpreter(Path(found), timeout=30.0)
        except InterpreterProbeError as e:
            _logger.debug("skipped interpreter %s: %s", found, e)
            continue
        if candidate.minor == runtime.minor and wanted.contains(candidate.version, True):
            _logger.info("python %s requested: using %s (%s)", requested, found, candidate.version)
            return candidate, []
    return runtime, [
        f"requested python {requested}, using {runtime.version} "
        f"(the FLOps runtime needs Python {runtime.minor}, and no python{runtime.minor} "
        "on PATH satisfies the request)"
    ]
