"""The addresses project services are given: refused at start when other hosts cannot use them.

A backend whose services run on other hosts (`Capabilities.services_on_other_hosts`) hands
each service the manager's callback URL and an MLflow URL, and (when services run images)
its workers pull from the registry. A loopback host there
(`127.0.0.0/8`, `::1`, `localhost`) or an unspecified one (`0.0.0.0`, `::`) would send the
service to its own host, where nothing answers; the manager refuses to start with them and
names the setting to change, rather than letting every project fail later.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from flops_core.errors import ConfigurationError
from flops_core.redact import redact_url
from flops_manager.core.config import Settings

__all__ = ["check_service_addresses", "is_local_host"]


def is_local_host(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) means this host
    to whoever uses it: loopback, `localhost`, or the unspecified address."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def check_service_addresses(settings: Settings, *, services_on_other_hosts: bool) -> None:
    """Refuse a callback URL, MLflow URL or registry that services on other hosts cannot reach.

    Parameters
    ----------
    settings : Settings
        The manager's settings: `callback_base_url` (FLOPS_PUBLIC_URL, else host and port)
        and `services_tracking_url` (FLOPS_PUBLIC_TRACKING_URI, FLOPS_TRACKING_URI or the
        embedded MLflow at FLOPS_MLFLOW_HOST).
    services_on_other_hosts : bool
        The backend's capability; without it every address is fine.

    Raises
    ------
    ConfigurationError
        A URL points at the services' own host; the message names the setting to change.
    """
    if not services_on_other_hosts:
        return
    backend = settings.orchestrator
    callback = settings.callback_base_url
    if _local_url(callback):
        raise ConfigurationError(
            f"the {backend} backend runs services on other hosts, and they would call the "
            f"manager back at {callback}, their own host: set FLOPS_PUBLIC_URL to the "
            "manager's URL as the workers reach it, e.g. http://10.0.0.1:5072"
        )
    tracking = settings.services_tracking_url
    if not _local_url(tracking):
        _check_registry(settings)
        return
    if settings.public_tracking_uri:
        fix = "set FLOPS_PUBLIC_TRACKING_URI to MLflow's URL as the workers reach it"
    elif settings.tracking_uri:
        fix = ("set FLOPS_PUBLIC_TRACKING_URI (or FLOPS_TRACKING_URI) to MLflow's URL as the "
               "workers reach it")  # fmt: skip
    else:
        fix = ("set FLOPS_MLFLOW_HOST to an address of this host the workers reach (the "
               "embedded MLflow binds to it), or FLOPS_PUBLIC_TRACKING_URI to MLflow's URL as "
               "they reach it")  # fmt: skip
    raise ConfigurationError(
        f"the {backend} backend runs services on other hosts, and they would log to MLflow "
        f"at {redact_url(tracking)}, their own host: {fix}, e.g. http://10.0.0.1:5000"
    )


def _local_url(url: str) -> bool:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return False
    return host is not None and is_local_host(host)


def _check_registry(settings: Settings) -> None:
    """Refuse a loopback registry where the workers pull the project images from it."""
    if settings.uses_images and _local_url(f"//{settings.registry}"):
        raise ConfigurationError(
            f"the {settings.orchestrator} backend runs services on other hosts, and their "
            f"workers would pull the project images from {settings.registry}, their own host: "
            "set FLOPS_REGISTRY to the registry's host:port as the workers reach it, e.g. "
            "10.0.0.1:5050"
        )
