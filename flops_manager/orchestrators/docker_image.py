"""Images for the `docker` backend: which platform a spec runs as, and pulling it if missing.

The daemon (Docker Engine 20.10 and later without the containerd image store) keeps one image
per tag, so the image a tag names may be for another platform than the one wanted (a manifest
list pulled for `linux/arm64` replaces the `linux/amd64` image of the same tag). The image is
therefore checked for the platform and pulled again where it does not match, and the backend
creates containers from the image id, so that a concurrent pull of the same tag for another
platform cannot change what runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import docker.errors
import docker.utils

from flops_core.logs import get_logger
from flops_core.registry_client import RegistryClient, RegistryError, split_ref
from flops_manager.orchestrators.orchestrator import DeployError

__all__ = ["choose_platform", "ensure_image", "platform_reference"]

_log = get_logger("manager.orchestrator")
_PULL_ATTEMPTS = 2  # a second pull repairs a tag re-pointed by a concurrent pull


def choose_platform(platforms: Sequence[str], host_platform: str) -> str | None:
    """Return the platform to run a spec as; `None` leaves the choice to the daemon.

    Parameters
    ----------
    platforms : Sequence[str]
        The spec's platforms: none, one (run as that one, under emulation if foreign), or
        several (the host's own if it is among them, else the first).
    host_platform : str
        The Docker host's platform, e.g. `linux/amd64`.
    """
    if not platforms:
        return None
    if len(platforms) > 1 and host_platform in platforms:
        return host_platform
    return platforms[0]


def _matches(image: Mapping[str, Any], platform: str | None) -> bool:
    if platform is None:
        return True
    os_name, arch, *variant = platform.split("/")
    if (image.get("Os"), image.get("Architecture")) != (os_name, arch):
        return False
    return not variant or image.get("Variant") in (None, "", variant[0])


def _describe(image: Mapping[str, Any]) -> str:
    parts = [image.get("Os") or "?", image.get("Architecture") or "?", image.get("Variant")]
    return "/".join(str(part) for part in parts if part)


def _inspect(client: Any, reference: str) -> dict[str, Any] | None:
    try:
        image: dict[str, Any] = client.inspect_image(reference)
    except docker.errors.ImageNotFound:
        return None
    return image


def _pull(client: Any, reference: str, platform: str | None, project_id: str) -> None:
    repository, tag = docker.utils.parse_repository_tag(reference)
    _log.info("project %s: pulling %s for %s", project_id, reference, platform or "this host")
    try:
        for event in client.pull(
            repository, tag=tag or "latest", platform=platform, stream=True, decode=True
        ):
            if "error" in event:
                raise DeployError(f"cannot pull image {reference}: {event['error']}")
    except docker.errors.NotFound as e:
        raise DeployError(
            f"image {reference} not found in the registry ({e.explanation}); "
            "check the name and tag, or whether the image was built and pushed"
        ) from e
    except docker.errors.APIError as e:
        raise DeployError(f"cannot pull image {reference}: {e.explanation or e}") from e


def ensure_image(
    client: Any, reference: str, platform: str | None, *, pull: bool, project_id: str
) -> str:
    """Return the id of the local image `reference` for `platform`, pulling it if needed.

    Parameters
    ----------
    client : docker.APIClient
        The daemon to ask.
    reference : str
        Image reference, e.g. `registry:5000/flops/learner:abc123`.
    platform : str | None
        The platform the image must be for; `None` accepts the image the tag names.
    pull : bool
        Pull an image that is missing (or for another platform), and pull tags again in
        case they moved; else use what the host has and refuse the spec if it lacks it.
    project_id : str
        For log records.

    Raises
    ------
    DeployError
        The image cannot be pulled, has no variant for `platform`, or is missing and
        pulling is off.
    """
    reference = platform_reference(reference, platform)
    image = _inspect(client, reference)
    if pull and "@" not in reference:
        # A tag may have moved since it was pulled (a rebuilt builder image, say): pull it
        # again (cheap when it has not); a tag that exists only on this host keeps working.
        try:
            _pull(client, reference, platform, project_id)
        except DeployError as e:
            if image is None:
                raise
            _log.warning("project %s: cannot refresh %s (%s); using the local image",
                         project_id, reference, e)  # fmt: skip
        else:
            image = _inspect(client, reference)
    for _ in range(_PULL_ATTEMPTS):
        if image is not None and _matches(image, platform):
            return str(image["Id"])
        if not pull:
            break
        _pull(client, reference, platform, project_id)
        image = _inspect(client, reference)
    if image is None:
        raise DeployError(f"image {reference} is not on the Docker host and pulling is off")
    raise DeployError(
        f"image {reference} is {_describe(image)}, not {platform}: it has no {platform} "
        "variant (build it for that platform, or pick another in `platforms`)"
    )


def platform_reference(reference: str, platform: str | None) -> str:
    """Return `name@<digest of platform's manifest>` for a manifest-list digest reference.

    Other references, and lists the registry cannot be asked about, are returned unchanged
    (the pull then says what is wrong).
    """
    if platform is None or "@sha256:" not in reference:
        return reference
    try:
        host, repository, digest = split_ref(reference)
    except ValueError:
        return reference
    loopback = host.split(":")[0] in ("localhost", "127.0.0.1", "[::1]")
    try:
        with RegistryClient(host, tls_verify=not loopback) as registry:
            manifest = registry.manifest(repository, digest)
    except RegistryError as e:
        _log.debug("cannot resolve %s for %s: %s", reference, platform, e)
        return reference
    if manifest is None or not manifest.platforms:
        return reference
    own = manifest.platform_digest(platform)
    return f"{host}/{repository}@{own}" if own else reference
