"""`flavor_base_at`: a registry image is a flavour base only with every platform and a lock."""

from __future__ import annotations

import pytest

from flops_core.registry_client import RegistryClient
from image_builder.flavor_base import RUNTIME_LOCK_LABEL, flavor_base_at
from tests.flops_core.test_registry_client import OCI_MANIFEST, _fake_registry


def _client(labels: dict[str, str]) -> RegistryClient:
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:c"}}
    config = {"os": "linux", "architecture": "amd64", "config": {"Labels": labels}}
    transport = _fake_registry(
        {
            "/v2/flops/base-sklearn/manifests/k1": (OCI_MANIFEST, manifest),
            "/v2/flops/base-sklearn/blobs/sha256:c": ("application/json", config),
        }
    )
    return RegistryClient("r:5000", tls_verify=False, transport=transport)


def test_an_image_with_the_runtime_lock_is_a_flavour_base_pinned_by_digest() -> None:
    # Prepare
    client = _client({RUNTIME_LOCK_LABEL: "flwr==1.41.0 numpy==2.2.6"})

    # Execute
    with client:
        base = flavor_base_at(
            client, "flops/base-sklearn", "k1", ["linux/amd64"], ref="r:5000/flops/base-sklearn:k1"
        )

    # Assert
    assert base is not None
    assert base.lock == ("flwr==1.41.0", "numpy==2.2.6")
    assert base.pinned_ref.startswith("r:5000/flops/base-sklearn@sha256:")


@pytest.mark.parametrize(
    ("labels", "platforms"),
    [({}, ["linux/amd64"]), ({RUNTIME_LOCK_LABEL: "flwr==1.41.0"}, ["linux/amd64", "linux/arm64"])],
    ids=["no lock: not made by this builder", "a platform is missing"],
)
def test_an_image_without_the_lock_or_a_platform_is_none(
    labels: dict[str, str], platforms: list[str]
) -> None:
    # Prepare
    client = _client(labels)

    # Execute
    with client:
        base = flavor_base_at(client, "flops/base-sklearn", "k1", platforms, ref="r:5000/x:k1")

    # Assert
    assert base is None


def test_an_image_the_registry_does_not_have_is_none() -> None:
    # Prepare
    client = _client({RUNTIME_LOCK_LABEL: "flwr==1.41.0"})

    # Execute
    with client:
        base = flavor_base_at(client, "flops/base-other", "k1", ["linux/amd64"], ref="r:5000/x:k1")

    # Assert
    assert base is None
