"""A small client of the Docker Registry HTTP API v2: manifests, platforms, digests, labels.

Only anonymous access is supported (the FLOps registry next to the manager needs none). With
`tls_verify=False` the client behaves like Buildah's `--tls-verify=false`: it tries HTTPS
without verifying the certificate, then plain HTTP. Every `httpx` error is translated into
`RegistryUnavailableError` (cannot connect, 5xx) or `RegistryError` (any other refusal).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from flops_core.closing import Closing
from flops_core.errors import FlopsError, TemporaryError
from flops_core.image_names import normalize_registry

__all__ = [
    "MANIFEST_ACCEPT",
    "ManifestInfo",
    "RegistryClient",
    "RegistryError",
    "RegistryUnavailableError",
    "existing_images",
    "split_ref",
]


class RegistryError(FlopsError):
    """Raised when the registry answers with an error (refused push, bad manifest); permanent."""


class RegistryUnavailableError(RegistryError, TemporaryError):
    """Raised when the registry cannot be reached at all; retryable once it is started."""

    def __init__(self, registry: str, detail: str) -> None:
        super().__init__(
            f"the registry at {registry} is not reachable: {detail}; start it or fix FLOPS_REGISTRY"
        )
        self.registry = registry


OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
#: The `Accept` header of manifest requests: lists first, then single-platform manifests.
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))


@dataclass(frozen=True)
class ManifestInfo:
    """A manifest (list) in the registry.

    Parameters
    ----------
    digest : str
        Its digest, `sha256:...`.
    media_type : str
        Its media type.
    platforms : dict[str, str]
        `os/arch[/variant]` to the digest of that platform's image manifest.
    """

    digest: str
    media_type: str
    platforms: dict[str, str]

    def has_platforms(self, wanted: Iterable[str]) -> bool:
        """Whether every platform in `wanted` (`linux/arm64`, `linux/arm64/v8`) is listed."""
        return all(self.platform_digest(p) is not None for p in wanted)

    def platform_digest(self, wanted: str) -> str | None:
        """The image manifest digest for `wanted`; a platform without variant matches any."""
        w_os, w_arch, w_variant = _split_platform(wanted)
        for platform, digest in self.platforms.items():
            p_os, p_arch, p_variant = _split_platform(platform)
            if p_arch == "arm64" and p_variant is None:
                p_variant = "v8"  # the only arm64 variant; registries often leave it out
            if (p_os, p_arch) == (w_os, w_arch) and w_variant in (None, p_variant):
                return digest
        return None


def split_ref(ref: str) -> tuple[str, str, str]:
    """Split `host[:port]/path:tag` (or `...@sha256:...`) into host, repository, reference."""
    host, _, rest = ref.partition("/")
    if not rest:
        raise ValueError(f"image ref {ref!r} has no registry host")
    if "@" in rest:
        repository, reference = rest.split("@", 1)
        repository = repository.rsplit(":", 1)[0] if ":" in repository else repository
    else:
        repository, _, reference = rest.rpartition(":")
        if not repository:
            repository, reference = rest, "latest"
    return host, repository, reference


class RegistryClient(Closing):
    """Read manifests and image configs from one registry.

    Parameters
    ----------
    registry : str
        `host[:port]` of the registry.
    tls_verify : bool
        Whether to require HTTPS with a verified certificate; False also allows plain HTTP.
    transport : httpx.BaseTransport | None
        For tests; the default is a real HTTP transport.
    timeout : float
        Seconds per request.
    """

    def __init__(
        self,
        registry: str,
        *,
        tls_verify: bool = True,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.registry = normalize_registry(registry)
        self._schemes = ["https"] if tls_verify else ["https", "http"]
        self._client = httpx.Client(
            timeout=timeout, verify=tls_verify, transport=transport, follow_redirects=True
        )

    def close(self) -> None:
        """Close the connections."""
        self._client.close()

    def ping(self) -> None:
        """Check that the registry answers the v2 API.

        Raises
        ------
        RegistryUnavailableError
            When it cannot be reached or answers 5xx.
        """
        response = self._get("/v2/", {})
        if response.status_code not in (200, 401):
            raise RegistryError(
                f"{self.registry} does not speak the registry API v2 (HTTP {response.status_code})"
            )

    def manifest(self, repository: str, reference: str) -> ManifestInfo | None:
        """The manifest (list) `repository:reference`, or None when it does not exist."""
        response = self._get(f"/v2/{repository}/manifests/{reference}", {"Accept": MANIFEST_ACCEPT})
        if response.status_code == 404:
            return None
        self._raise_for_status(response, f"{repository}:{reference}")
        body = response.content
        digest = response.headers.get("Docker-Content-Digest") or _sha256(body)
        data = _json(body, f"manifest of {repository}:{reference}")
        media_type = str(data.get("mediaType") or response.headers.get("Content-Type", ""))
        platforms: dict[str, str] = {}
        if media_type in (OCI_INDEX, DOCKER_LIST) or "manifests" in data:
            for entry in data.get("manifests", []):
                platform = entry.get("platform") or {}
                if platform.get("os") == "unknown":  # attestations, not images
                    continue
                key = "/".join(
                    p
                    for p in (
                        platform.get("os"),
                        platform.get("architecture"),
                        platform.get("variant"),
                    )
                    if p
                )
                platforms.setdefault(key, str(entry["digest"]))
        else:
            config = self._config(repository, data)
            key = "/".join(
                str(p)
                for p in (config.get("os"), config.get("architecture"), config.get("variant"))
                if p
            )
            platforms[key] = digest
        return ManifestInfo(digest=digest, media_type=media_type, platforms=platforms)

    def image_labels(self, repository: str, reference: str, platform: str) -> dict[str, str]:
        """The labels of the image `repository:reference` for `platform` ({} when it has none).

        Raises
        ------
        RegistryError
            When the image or that platform does not exist.
        """
        info = self.manifest(repository, reference)
        digest = info.platform_digest(platform) if info else None
        if info is None or digest is None:
            raise RegistryError(f"{self.registry}/{repository}:{reference} has no {platform} image")
        manifest_reference = reference if digest == info.digest else digest
        response = self._get(
            f"/v2/{repository}/manifests/{manifest_reference}", {"Accept": MANIFEST_ACCEPT}
        )
        self._raise_for_status(response, f"{repository}@{digest}")
        config = self._config(repository, _json(response.content, "image manifest"))
        labels = (config.get("config") or {}).get("Labels") or {}
        return {str(k): str(v) for k, v in labels.items()}

    def _config(self, repository: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        digest = (manifest.get("config") or {}).get("digest")
        if not digest:
            raise RegistryError(f"a manifest in {repository} has no config")
        response = self._get(f"/v2/{repository}/blobs/{digest}", {})
        self._raise_for_status(response, f"{repository} config {digest}")
        return _json(response.content, "image config")

    def _get(self, path: str, headers: dict[str, str]) -> httpx.Response:
        error: httpx.TransportError | None = None
        for scheme in list(self._schemes):
            try:
                response = self._client.get(f"{scheme}://{self.registry}{path}", headers=headers)
            except httpx.TransportError as e:
                error = e
                continue
            self._schemes = [scheme]  # keep what worked
            if response.status_code >= 500:
                raise RegistryUnavailableError(
                    self.registry, f"it answered HTTP {response.status_code}"
                )
            return response
        detail = str(error) or type(error).__name__
        raise RegistryUnavailableError(self.registry, detail) from error

    def _raise_for_status(self, response: httpx.Response, what: str) -> None:
        if response.status_code in (401, 403):
            raise RegistryError(
                f"the registry at {self.registry} refused access to {what} "
                f"(HTTP {response.status_code}); the image builder supports only anonymous access"
            )
        if response.is_error:
            raise RegistryError(
                f"the registry at {self.registry} answered HTTP {response.status_code} for {what}"
            )


def existing_images(
    registry: str,
    refs: Mapping[str, str],
    platforms: Iterable[str],
    tls_verify: bool = True,
    *,
    labels: Mapping[str, str] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> dict[str, str] | None:
    """Return `refs` with digests (`<ref>@sha256:...`) when every image lists all `platforms`.

    Parameters
    ----------
    registry : str
        `host[:port]` to ask (the refs' own host part is not used to connect).
    refs : Mapping[str, str]
        E.g. `image_refs(...)`: role to tag ref.
    platforms : Iterable[str]
        `linux/amd64`, `linux/arm64`, ...
    tls_verify : bool
        As for `RegistryClient`.
    labels : Mapping[str, str] | None
        Labels every image must carry (checked on its first platform), e.g. the runtime
        fingerprint; an image without them counts as missing.
    transport : httpx.BaseTransport | None
        For tests.

    Returns
    -------
    dict[str, str] | None
        Role to `<ref>@<digest>` of the manifest (list), or None if any image is missing,
        lacks a platform or a label.

    Raises
    ------
    RegistryUnavailableError
        When the registry cannot be reached.
    RegistryError
        When it refuses a request.
    """
    wanted = list(platforms)
    found: dict[str, str] = {}
    with RegistryClient(registry, tls_verify=tls_verify, transport=transport) as client:
        for role, ref in refs.items():
            _, repository, reference = split_ref(ref)
            info = client.manifest(repository, reference)
            if info is None or not info.has_platforms(wanted):
                return None
            if labels:
                have = client.image_labels(repository, reference, wanted[0])
                if any(have.get(key) != value for key, value in labels.items()):
                    return None
            found[role] = f"{ref}@{info.digest}"
    return found


def _split_platform(platform: str) -> tuple[str, str, str | None]:
    parts = platform.strip().lower().split("/")
    if len(parts) < 2:
        return parts[0], "", None
    variant = parts[2] if len(parts) > 2 else None
    return parts[0], parts[1], variant


def _sha256(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as e:
        raise RegistryError(f"the registry sent an unreadable {what}") from e
    if not isinstance(data, dict):
        raise RegistryError(f"the registry sent an unreadable {what}")
    return data
