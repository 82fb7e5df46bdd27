"""The registry client, against a fake that speaks the v2 API and against the real registry."""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from flops_core.registry_client import RegistryClient, split_ref
from image_builder import RegistryUnavailableError, existing_images
from image_builder.errors import RegistryError
from tests.conftest import free_port
from tests.image_builder.conftest import REGISTRY

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _fake_registry(documents: dict[str, tuple[str, dict[str, object]]]) -> httpx.MockTransport:
    """Serve `documents` (path → media type, JSON) over plain HTTP; anything else is 404."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.scheme == "https":
            raise httpx.ConnectError("TLS handshake failed: plain HTTP server")
        if request.url.path == "/v2/":
            return httpx.Response(200, json={})
        if request.url.path not in documents:
            return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN"}]})
        assert OCI_INDEX in request.headers.get("Accept", "") or "/blobs/" in request.url.path
        media_type, body = documents[request.url.path]
        return httpx.Response(200, content=json.dumps(body), headers={"Content-Type": media_type})

    return httpx.MockTransport(handle)


def _index(media_type: str, *platforms: dict[str, str]) -> tuple[str, dict[str, object]]:
    manifests = [
        {"mediaType": OCI_MANIFEST, "digest": f"sha256:{i:064x}", "size": 1, "platform": p}
        for i, p in enumerate(platforms, start=1)
    ]
    return media_type, {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}


AMD64 = {"os": "linux", "architecture": "amd64"}
ARM64 = {"os": "linux", "architecture": "arm64", "variant": "v8"}
REFS = {"learner": "r:5000/c/repo/learner:abc", "aggregator": "r:5000/c/repo/aggregator:abc"}


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_images_with_every_platform_are_returned_with_digests(media_type: str) -> None:
    # Prepare
    transport = _fake_registry(
        {
            "/v2/c/repo/learner/manifests/abc": _index(media_type, AMD64, ARM64),
            "/v2/c/repo/aggregator/manifests/abc": _index(media_type, ARM64, AMD64),
        }
    )

    # Execute
    found = existing_images(
        "r:5000", REFS, ["linux/amd64", "linux/arm64"], False, transport=transport
    )

    # Assert
    assert found is not None
    assert set(found) == {"learner", "aggregator"}
    for role, ref in found.items():
        assert ref.startswith(REFS[role] + "@sha256:")
        assert len(ref.rsplit("@", 1)[1]) == len("sha256:") + 64


def test_a_missing_image_or_platform_gives_none() -> None:
    # Prepare
    transport = _fake_registry(
        {
            "/v2/c/repo/learner/manifests/abc": _index(OCI_INDEX, AMD64),
            "/v2/c/repo/aggregator/manifests/abc": _index(OCI_INDEX, AMD64, ARM64),
        }
    )

    # Execute / Assert
    both = ["linux/amd64", "linux/arm64"]
    assert existing_images("r:5000", REFS, both, False, transport=transport) is None
    only_aggregator = {"aggregator": REFS["aggregator"]}
    assert existing_images(
        "r:5000", only_aggregator, ["linux/arm64/v8"], False, transport=transport
    )
    missing = {"learner": "r:5000/c/repo/learner:other"}
    assert existing_images("r:5000", missing, ["linux/amd64"], False, transport=transport) is None


def test_a_single_platform_image_is_matched_by_its_config() -> None:
    # Prepare
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:c"}}
    config = {"os": "linux", "architecture": "arm64", "config": {"Labels": {"a": "b"}}}
    transport = _fake_registry(
        {
            "/v2/c/x/manifests/1": (OCI_MANIFEST, manifest),
            "/v2/c/x/blobs/sha256:c": ("application/json", config),
        }
    )

    # Execute
    with RegistryClient("r:5000", tls_verify=False, transport=transport) as client:
        info = client.manifest("c/x", "1")
        labels = client.image_labels("c/x", "1", "linux/arm64")

    # Assert
    assert info is not None and info.has_platforms(["linux/arm64"])
    assert not info.has_platforms(["linux/amd64"])
    assert labels == {"a": "b"}


def test_refusals_are_registry_errors() -> None:
    # Prepare
    transport = httpx.MockTransport(lambda request: httpx.Response(401))

    # Execute / Assert
    with pytest.raises(RegistryError, match="only anonymous access"):
        existing_images("r:5000", REFS, ["linux/amd64"], True, transport=transport)
    server_error = httpx.MockTransport(lambda request: httpx.Response(503))
    with pytest.raises(RegistryUnavailableError, match="answered HTTP 503"):
        existing_images("r:5000", REFS, ["linux/amd64"], True, transport=server_error)


def test_an_unreachable_registry_says_how_to_fix_it() -> None:
    # Prepare
    registry = f"127.0.0.1:{free_port()}"

    # Execute
    with pytest.raises(RegistryUnavailableError) as caught:
        existing_images(registry, REFS, ["linux/amd64"], False)

    # Assert
    message = str(caught.value)
    assert message.startswith(f"the registry at {registry} is not reachable: ")
    assert message.endswith("; start it or fix FLOPS_REGISTRY")
    assert caught.value.retryable


def test_split_ref() -> None:
    assert split_ref("h:5000/a/b:t") == ("h:5000", "a/b", "t")
    assert split_ref("h:5000/a/b:t@sha256:00") == ("h:5000", "a/b", "sha256:00")
    assert split_ref("h/a") == ("h", "a", "latest")


# --- against the real registry ---------------------------------------------------------------


def _buildah(*args: str) -> str:
    result = subprocess.run(["buildah", *args], check=True, capture_output=True, text=True)
    return result.stdout.strip()


@pytest.fixture(scope="module")
def pushed_list(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A tiny linux/amd64 + linux/arm64 image (no RUN, so no emulation) in the registry."""
    namespace = f"test-ib-{uuid.uuid4().hex[:8]}"
    ref = f"{REGISTRY}/{namespace}/tiny:v1"
    hello = tmp_path_factory.mktemp("tiny") / "hello.txt"
    hello.write_text("hello\n")
    manifest = f"{namespace}-list"
    local = []
    _buildah("manifest", "create", manifest)
    try:
        for arch in ("amd64", "arm64"):
            container = _buildah("from", "--arch", arch, "scratch")
            _buildah("copy", container, str(hello), "/hello.txt")
            _buildah(
                "config", "--arch", arch, "--os", "linux", "--label", f"arch={arch}", container
            )
            image = f"localhost/{namespace}/tiny:{arch}"
            _buildah("commit", "--rm", container, image)
            local.append(image)
            _buildah("manifest", "add", manifest, image)
        _buildah("manifest", "push", "--all", "--tls-verify=false", manifest, f"docker://{ref}")
        yield ref
    finally:
        subprocess.run(["buildah", "manifest", "rm", manifest], capture_output=True)
        for image in local:
            subprocess.run(["buildah", "rmi", image], capture_output=True)
        digest = subprocess.run(
            [
                "skopeo",
                "inspect",
                "--tls-verify=false",
                "--format",
                "{{.Digest}}",
                f"docker://{ref}",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if digest:
            httpx.delete(
                f"http://{REGISTRY}/v2/{namespace}/tiny/manifests/{digest}",
                headers={"Accept": OCI_INDEX},
            )


@pytest.mark.container
def test_real_registry_lists_platforms_digests_and_labels(pushed_list: str) -> None:
    # Execute
    found = existing_images(REGISTRY, {"tiny": pushed_list}, ["linux/amd64", "linux/arm64"], False)
    missing_platform = existing_images(REGISTRY, {"tiny": pushed_list}, ["linux/s390x"], False)
    missing_tag = existing_images(
        REGISTRY, {"tiny": pushed_list[:-2] + "v2"}, ["linux/amd64"], False
    )
    _, repository, tag = split_ref(pushed_list)
    with RegistryClient(REGISTRY, tls_verify=False) as client:
        labels = client.image_labels(repository, tag, "linux/arm64")

    # Assert
    skopeo = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{pushed_list}"],
        check=True,
        capture_output=True,
    ).stdout
    assert found == {"tiny": f"{pushed_list}@sha256:{hashlib.sha256(skopeo).hexdigest()}"}
    assert missing_platform is None
    assert missing_tag is None
    assert labels["arch"] == "arm64"
    # Images must also carry the labels asked for (the manager asks for its runtime's)
    both = ["linux/amd64", "linux/arm64"]
    assert existing_images(REGISTRY, {"tiny": pushed_list}, both, False, labels={"arch": "amd64"})
    assert (
        existing_images(REGISTRY, {"tiny": pushed_list}, both, False, labels={"arch": "x"}) is None
    )
