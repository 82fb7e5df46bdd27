"""Render the learner and aggregator Containerfiles, layers ordered for the build cache.

Layers run from what changes least to what changes most, so that a new commit of an ML
repo rebuilds only what it touched:

1. `FROM` the flavour base, by digest (the runtime and the ML library, minutes to build);
2. the repo's dependency lock and its `pip install` (changes when the dependencies do;
   left out when the base already has everything the repo needs);
3. the FLOps runtime code (changes with FLOps releases only);
4. the user code at `/app` (changes with every commit), then labels.

The learner and the aggregator differ only in their last instruction, the default
command, so they share every other layer. There is no `ENTRYPOINT`: the orchestrator's
command (`python -m flops_learner --project-id ...`) replaces `CMD` as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from flops_core.flops_tree import RUNTIME_LABEL

__all__ = [
    "APP_DIR",
    "LOCK_FILE",
    "ROLE_MODULES",
    "RUNTIME_CODE_DIR",
    "image_labels",
    "render_project_containerfile",
]

#: The role of each image and the module it runs.
ROLE_MODULES: dict[str, str] = {"learner": "flops_learner", "aggregator": "flops_aggregator"}

#: Names in the build context.
LOCK_FILE = "flops-requirements.lock"
RUNTIME_CODE_DIR = "flops-runtime"
APP_DIR = "app"

_IN_IMAGE_LOCK = "/opt/flops/requirements.lock"
_IN_IMAGE_RUNTIME = "/opt/flops/runtime"


def image_labels(
    *, source: str, revision: str, version: str, flavor: str, runtime: str = ""
) -> dict[str, str]:
    """The OCI labels of a project image.

    Parameters
    ----------
    source : str
        The repo URL, credentials redacted.
    revision : str
        The commit.
    version : str
        The FLOps version.
    flavor : str
        The ML flavour.
    runtime : str
        The FLOps runtime's fingerprint (`FlopsTree.runtime_fingerprint()`), if known.
    """
    labels = {
        "org.opencontainers.image.source": source,
        "org.opencontainers.image.revision": revision,
        "org.opencontainers.image.version": version,
        "io.flops.flavor": flavor,
    }
    if runtime:
        labels[RUNTIME_LABEL] = runtime
    return labels


def render_project_containerfile(
    *, base: str, role: str, labels: Mapping[str, str], install_requirements: bool
) -> str:
    """The Containerfile of one project image.

    Parameters
    ----------
    base : str
        The flavour base, `<repository>@sha256:...`.
    role : str
        `learner` or `aggregator`.
    labels : Mapping[str, str]
        Labels of the image (`image_labels`).
    install_requirements : bool
        Whether the lock in the context lists packages to install on top of the base.

    Raises
    ------
    ValueError
        For an unknown role.
    """
    if role not in ROLE_MODULES:
        raise ValueError(f"unknown image role {role!r}; expected one of {sorted(ROLE_MODULES)}")
    label_lines = " \\\n      ".join(f"{key}={json.dumps(value)}" for key, value in labels.items())
    command = json.dumps(["python", "-m", ROLE_MODULES[role]])
    requirements = (
        f"""\
# The repo's own dependencies, pinned, on top of the runtime (which they may not change).
COPY {LOCK_FILE} {_IN_IMAGE_LOCK}
RUN PIP_CERT=/etc/ssl/certs/ca-certificates.crt pip install --no-input --progress-bar off \\
      -r {_IN_IMAGE_LOCK} -c /opt/venv/flops-runtime.lock
"""
        if install_requirements
        else "# The flavour base has every dependency of the repo.\n"
    )
    return f"""\
# Rendered by the FLOps image builder; layers go from what changes least to what changes most.
FROM {base}

{requirements}
# The FLOps runtime code (flops_utils, flops_learner, flops_aggregator, flops_data_server).
COPY {RUNTIME_CODE_DIR}/ {_IN_IMAGE_RUNTIME}/
ENV PYTHONPATH={_IN_IMAGE_RUNTIME}

# The user's code: model_manager.py and the rest of the repo at this commit.
WORKDIR /app
COPY {APP_DIR}/ /app/
LABEL {label_lines}

CMD {command}
"""
