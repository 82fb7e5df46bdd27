"""MLflow's generated serving Dockerfile, adapted to FLOps: flavour base, no pip under qemu.

`mlflow models generate-dockerfile` (MLflow 3.17.2) writes, for a model with a Python
environment::

    FROM python:3.11.7-slim                    # the model's Python, from Docker Hub
    RUN printf ... > /etc/apt/apt.conf.d/99-mlflow-timeouts
    RUN apt-get -y update && apt-get install -y --no-install-recommends nginx
    WORKDIR /opt/mlflow
    RUN pip install mlflow==3.17.2
    COPY model_dir/model /opt/ml/model
    RUN python -c "from mlflow.models import container as C; C._install_pyfunc_deps(...)"
    ENV MLFLOW_DISABLE_ENV_CREATION=True
    RUN chmod o+rwX /opt/mlflow/
    RUN rm -rf /var/lib/apt/lists/*
    ENTRYPOINT ["python", "-c", "from mlflow.models import container as C; C._serve('local')"]

Here no registry is reachable and arm64 steps run under qemu, so `adapt_dockerfile` changes:
the FROM becomes the flavour base (Python, MLflow, the ML library and uvicorn for every
platform, pinned by digest); the apt steps that only install nginx go, because the image
serves with `mlflow models serve` (MLflow's scoring server, uvicorn) directly on port 8080,
the port of MLflow's own images, instead of nginx in front of it; `pip install mlflow` and
`_install_pyfunc_deps` (pip of the model's whole `requirements.txt` under emulation) become a
COPY of only the distributions the base lacks, installed natively by the builder for each
platform (`cross_install`), with pip in the image only for a platform whose wheels could not
be prepared. Everything else (WORKDIR, the model COPY, ENV, the chmod) is kept as generated.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

__all__ = [
    "EXTRA_REQUIREMENTS_FILE",
    "MODEL_PATH",
    "SERVING_PORT",
    "GeneratedDockerfile",
    "adapt_dockerfile",
    "missing_requirements",
    "parse_generated_dockerfile",
    "serving_command",
]

#: Where MLflow's container puts the model (and `mlflow models serve` reads it).
MODEL_PATH = "/opt/ml/model"
#: The port of MLflow's serving images.
SERVING_PORT = 8080
#: The build-context file listing the distributions installed on top of the base.
EXTRA_REQUIREMENTS_FILE = "flops-extra-requirements.txt"

_VENV = "/opt/venv"
_APT_ONLY_FOR_NGINX = re.compile(r"apt\.conf\.d/99-mlflow-timeouts|/var/lib/apt/lists")
_APT_INSTALL = re.compile(r"apt-get\s+install\s+(?P<args>[^&;|]*)")
#: The environment markers of every image: CPython 3.11 on Linux.
_TARGET = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
}
_PIP_INSTALL = re.compile(r"^pip3?\s+install\s+(?P<args>.+)$")


@dataclass(frozen=True)
class GeneratedDockerfile:
    """What MLflow's generated Dockerfile holds, as instructions (continuations joined).

    Parameters
    ----------
    instructions : tuple[str, ...]
        Every instruction, comments and blank lines left out.
    pip_requirements : tuple[str, ...]
        What its `RUN pip install` steps install (e.g. `mlflow==3.17.2`).
    """

    instructions: tuple[str, ...]
    pip_requirements: tuple[str, ...]


def parse_generated_dockerfile(text: str) -> GeneratedDockerfile:
    """Split MLflow's Dockerfile into instructions and collect what its pip steps install."""
    instructions: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        instructions.append((pending + line).strip())
        pending = ""
    if pending:
        instructions.append(pending.strip())
    requirements: list[str] = []
    for instruction in instructions:
        keyword, _, rest = instruction.partition(" ")
        match = _PIP_INSTALL.match(rest.strip()) if keyword.upper() == "RUN" else None
        if match:
            requirements += [a for a in shlex.split(match["args"]) if not a.startswith("-")]
    return GeneratedDockerfile(tuple(instructions), tuple(requirements))


def serving_command() -> list[str]:
    """The image's ENTRYPOINT: MLflow's scoring server for the model, on all interfaces.

    The port is the image's command (`--port 8080`), so that whoever runs it can choose
    another by passing `--port N` as the command (several models on one host network).
    """
    return [
        *("mlflow", "models", "serve", "--model-uri", MODEL_PATH),
        *("--env-manager", "local", "--host", "0.0.0.0"),
    ]


def adapt_dockerfile(
    generated: GeneratedDockerfile,
    *,
    base_image: str,
    extra_requirements: Sequence[str] = (),
    prepared_arches: Iterable[str] = (),
    port: int = SERVING_PORT,
) -> str:
    """Render the inference Containerfile from MLflow's generated one (see the module doc).

    Parameters
    ----------
    generated : GeneratedDockerfile
        MLflow's Dockerfile.
    base_image : str
        The flavour base, pinned (`<repository>@sha256:...`).
    extra_requirements : Sequence[str]
        Pinned distributions the base lacks; empty: nothing is installed.
    prepared_arches : Iterable[str]
        `TARGETARCH` values (`amd64`, `arm64`) whose `prepared-<arch>/` context folder holds
        `extra_requirements` installed natively; pip runs in the image for any other.
    port : int
        The serving port.
    """
    lines = [
        "# MLflow's serving image for one registered model version, adapted by the FLOps image",
        "# builder (image_builder/inference_containerfile.py) from `mlflow models",
        "# generate-dockerfile`: the flavour base instead of Docker Hub's Python, no nginx,",
        f"# only what the base lacks installed; `mlflow models serve` answers on port {port}",
        "# (POST /invocations, GET /ping).",
    ]
    deps_written = False
    for instruction in generated.instructions:
        keyword, _, rest = instruction.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            lines.append(f"FROM {base_image}")
        elif keyword == "ENTRYPOINT" or keyword == "CMD":
            continue  # replaced at the end
        elif keyword == "RUN" and _is_nginx_only(rest):
            continue
        elif keyword == "RUN" and (
            _PIP_INSTALL.match(rest.strip()) or "_install_pyfunc_deps" in rest
        ):
            if not deps_written:
                lines += _dependency_steps(extra_requirements, prepared_arches)
                deps_written = True
        elif keyword == "COPY" and MODEL_PATH in rest.split() and not deps_written:
            lines += _dependency_steps(extra_requirements, prepared_arches)
            deps_written = True
            lines.append(instruction)
        else:
            lines.append(instruction)
    if not deps_written:
        lines += _dependency_steps(extra_requirements, prepared_arches)
    lines += [
        f"EXPOSE {port}",
        f"ENTRYPOINT {json.dumps(serving_command())}",
        f'CMD ["--port", "{port}"]',
    ]
    return "\n".join(lines) + "\n"


def missing_requirements(requirements: Iterable[str], lock: Iterable[str]) -> list[str]:
    """The requirement lines that the pinned `lock` (`name==version` lines) does not satisfy.

    A line whose marker does not apply (Python 3.11 on Linux) is satisfied. Lines that are
    not plain requirements (options, URLs, extras whose dependencies are unknown here) are
    returned: pip decides about them.
    """
    pinned: dict[str, Version] = {}
    for line in lock:
        name, sep, version = line.partition("==")
        if sep:
            try:
                pinned[canonicalize_name(name.strip())] = Version(version.strip())
            except InvalidVersion:
                continue
    missing: list[str] = []
    for raw in requirements:
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            missing.append(line)
            continue
        if requirement.marker is not None and not requirement.marker.evaluate(_TARGET):
            continue
        have = pinned.get(canonicalize_name(requirement.name))
        if (
            requirement.url
            or requirement.extras
            or have is None
            or not requirement.specifier.contains(have, prereleases=True)
        ):
            missing.append(line)
    return missing


def _is_nginx_only(command: str) -> bool:
    """Whether a RUN step only serves nginx: its apt timeouts, its install, the apt cleanup."""
    if _APT_ONLY_FOR_NGINX.search(command):
        return True
    match = _APT_INSTALL.search(command)
    if not match:
        return False
    packages = [a for a in match["args"].split() if not a.startswith("-")]
    return packages == ["nginx"]


def _dependency_steps(extra: Sequence[str], prepared_arches: Iterable[str]) -> list[str]:
    if not extra:
        return ["# The flavour base already has MLflow and every requirement of the model."]
    arches = sorted(set(prepared_arches))
    steps = [
        "# Distributions the model needs that the flavour base lacks: installed by the builder",
        "# natively for each platform (prepared-<arch>/ is laid out like the venv).",
        f"COPY {EXTRA_REQUIREMENTS_FILE} {_VENV}/{EXTRA_REQUIREMENTS_FILE}",
        "ARG TARGETARCH",
        f"COPY prepared-${{TARGETARCH}}/ {_VENV}/",
    ]
    pip = (
        "PIP_CERT=/etc/ssl/certs/ca-certificates.crt pip install --no-input --no-deps "
        f"--progress-bar off -r {_VENV}/{EXTRA_REQUIREMENTS_FILE}"
    )
    if not arches:
        return [*steps, f"RUN {pip}"]
    return [
        *steps,
        f'RUN case "${{TARGETARCH}}" in {"|".join(arches)}) ;; *) {pip} ;; esac',
    ]
