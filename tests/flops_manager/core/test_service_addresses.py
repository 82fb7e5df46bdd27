"""Addresses services on other hosts get: loopback ones are refused at start, naming the fix."""

from __future__ import annotations

from typing import Any

import pytest

from flops_core.errors import ConfigurationError
from flops_manager.core.config import Settings
from flops_manager.core.service_addresses import check_service_addresses, is_local_host

TOKEN = "a" * 32


def settings(**fields: Any) -> Settings:
    return Settings(admin_token=TOKEN, _env_file=None, **fields)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST.", "0.0.0.0", "::",
             "node.localhost"],
)  # fmt: skip
def test_loopback_and_unspecified_hosts_are_local(host: str) -> None:
    assert is_local_host(host)


@pytest.mark.parametrize("host", ["10.0.0.1", "fd00::2", "manager.example.org", "192.168.1.5"])
def test_other_hosts_are_not_local(host: str) -> None:
    assert not is_local_host(host)


def test_services_on_this_host_may_use_loopback() -> None:
    check_service_addresses(settings(), services_on_other_hosts=False)


def test_the_callback_url_on_loopback_is_refused_naming_flops_public_url() -> None:
    with pytest.raises(ConfigurationError, match="set FLOPS_PUBLIC_URL") as error:
        check_service_addresses(settings(host="0.0.0.0"), services_on_other_hosts=True)
    assert "http://0.0.0.0:5072" in str(error.value)


@pytest.mark.parametrize(
    ("fields", "setting"),
    [
        ({}, "set FLOPS_MLFLOW_HOST"),
        ({"mlflow_host": "::1"}, "set FLOPS_MLFLOW_HOST"),
        ({"tracking_uri": "http://localhost:5000"}, "FLOPS_TRACKING_URI"),
        ({"mlflow_host": "10.0.0.1", "public_tracking_uri": "http://127.0.0.1:5000"},
         "set FLOPS_PUBLIC_TRACKING_URI to"),
    ],
)  # fmt: skip
def test_the_services_mlflow_url_on_loopback_is_refused_naming_the_setting(
    fields: dict[str, Any], setting: str
) -> None:
    configured = settings(public_url="http://10.0.0.1:5072", **fields)
    with pytest.raises(ConfigurationError, match=setting):
        check_service_addresses(configured, services_on_other_hosts=True)


def test_credentials_in_a_refused_tracking_url_are_not_shown() -> None:
    configured = settings(public_url="http://10.0.0.1:5072",
                          tracking_uri="http://me:s3cret@127.0.0.1:5000")  # fmt: skip
    with pytest.raises(ConfigurationError) as error:
        check_service_addresses(configured, services_on_other_hosts=True)
    assert "s3cret" not in str(error.value)


def test_addresses_the_workers_reach_are_accepted_and_given_to_services() -> None:
    # Prepare
    embedded = settings(public_url="http://10.0.0.1:5072", mlflow_host="10.0.0.1")
    public = settings(public_url="http://10.0.0.1:5072", mlflow_host="0.0.0.0",
                      public_tracking_uri="http://mlflow.example.org/")  # fmt: skip
    ipv6 = settings(host="fd00::1", mlflow_host="fd00::1")

    # Execute
    for configured in (embedded, public, ipv6):
        check_service_addresses(configured, services_on_other_hosts=True)

    # Assert
    assert embedded.services_tracking_url == "http://10.0.0.1:5000"
    assert public.services_tracking_url == "http://mlflow.example.org"
    assert ipv6.services_tracking_url == "http://[fd00::1]:5000"
    assert ipv6.callback_base_url == "http://[fd00::1]:5072"


def test_a_loopback_registry_is_refused_where_workers_pull_images() -> None:
    # Prepare
    reachable = {"public_url": "http://10.0.0.1:5072", "mlflow_host": "10.0.0.1"}
    images_from_loopback = settings(service_runtime="images", **reachable)
    images_from_the_bridge = settings(service_runtime="images", registry="10.0.0.1:5050",
                                      **reachable)  # fmt: skip
    environments = settings(service_runtime="environment", **reachable)

    # Execute / Assert
    with pytest.raises(ConfigurationError, match="set FLOPS_REGISTRY") as error:
        check_service_addresses(images_from_loopback, services_on_other_hosts=True)
    assert "127.0.0.1:5050" in str(error.value)
    check_service_addresses(images_from_the_bridge, services_on_other_hosts=True)
    check_service_addresses(environments, services_on_other_hosts=True)
