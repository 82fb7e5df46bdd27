"""What one image build is asked to do, and what it produced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["STEPS", "BuildRequest", "BuildResult", "JobRequest"]

#: The steps of a build, in order.
STEPS: tuple[str, ...] = ("clone", "check", "resolve", "base", "render", "build", "push")


@dataclass(frozen=True)
class JobRequest:
    """What every build job is asked for: the platforms, where to push, where to work.

    Parameters
    ----------
    platforms : tuple[str, ...]
        E.g. `("linux/amd64", "linux/arm64")`.
    registry : str
        `host[:port]` to push to (and where flavour bases live).
    customer, project_id : str
        Name the images, and the events.
    base_image : str
        What flavour bases start FROM.
    tls_verify : bool
        Whether the registry must use verified HTTPS.
    work_dir : Path
        An empty folder for what the job fetches, its build contexts and logs.
    """

    platforms: tuple[str, ...]
    registry: str
    customer: str
    project_id: str
    base_image: str
    tls_verify: bool
    work_dir: Path


@dataclass(frozen=True)
class BuildRequest(JobRequest):
    """What to build (the CLI's arguments): a repo at a commit, and all `JobRequest` names.

    Parameters
    ----------
    repo_url, commit : str
        The ML repo and the commit to build.
    flavor : str
        A key of `FLAVORS`.
    """

    repo_url: str
    commit: str
    flavor: str


@dataclass(frozen=True)
class BuildResult:
    """The pushed images (role to `<ref>@sha256:...`), the platforms and each step's seconds."""

    images: dict[str, str]
    platforms: tuple[str, ...]
    timings: dict[str, float]
