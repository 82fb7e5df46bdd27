"""Clusters, nodes, users and ids of the fake Oakestra root orchestrator."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime

from flops_manager.orchestrators.local_process import host_platform

__all__ = [
    "ADMIN_ROLES",
    "HOST",
    "PROVIDER_ROLES",
    "FakeCluster",
    "FakeNode",
    "FakeUser",
    "new_object_id",
    "oid",
]

LOOPBACK = "127.0.0.1"
"""The `publicip` of instances on a node without an address: this machine."""

HOST = "host"
"""A node platform that stands for this machine's platform, e.g. `linux/amd64`."""

ADMIN_ROLES = ["Admin", "Organization_Admin", "Application_Provider", "Infrastructure_Provider"]
"""The roles Oakestra gives its `Admin` user in the `root` organization."""

PROVIDER_ROLES = ["Application_Provider"]
"""The roles of every other user of the fake."""


def new_object_id() -> str:
    """Return a new MongoDB-ObjectId-like id: 24 hex digits, the first 8 the time in seconds."""
    return f"{int(time.time()):08x}{os.urandom(8).hex()}"


def oid(object_id: str) -> dict[str, str]:
    """Return an id as MongoDB extended JSON writes it: `{"$oid": ...}`."""
    return {"$oid": object_id}


@dataclass
class FakeNode:
    """A worker node: what the fake's scheduler places instances on.

    In Oakestra a worker is a host running the NodeEngine; the instances it runs report the
    worker's IP as `publicip` and `host_ip` (oakestra-api.md §3.2), and a service is reached
    from other hosts at that IP. A fake node stands for such a host in one of two ways:

    - without `netns` (default) it is this machine: its instances run as plain processes
      here and report `127.0.0.1` (or `address`, if given);
    - with `netns` it is a separate network host, a Linux network namespace (see
      `tests/multinode/testbed.py`): its instances run inside it (`ip netns exec <netns>
      <cmd...>`), so they see the network as processes on that worker would (its own
      address; no route to this machine's loopback), and they report `address` as
      `publicip` and `host_ip`.

    Parameters
    ----------
    name : str
        Node name; `direct` constraints name it in `node`.
    platform : str
        OCI platform such as `linux/arm64`; `host` (default) is this machine's platform.
    memory_mb, vcpus : int
        Capacity; instances that have not ended reserve their SLA `memory` / `vcpus`.
    active : bool
        Inactive nodes get no instances (see `FakeOakestra.set_node_active`).
    addons : list[str]
        Node addons (`FLOps-learner`, `image-builder`), reported as the cluster's
        `supported_addons`; the scheduler ignores them, as Oakestra's does.
    address : str | None
        The worker's IP; None: `127.0.0.1`.
    netns : str | None
        The network namespace its instances run in; None: this machine's network.
    """

    name: str
    platform: str = HOST
    memory_mb: int = 16384
    vcpus: int = 8
    active: bool = True
    addons: list[str] = field(default_factory=list)
    node_id: str = field(default_factory=new_object_id)
    address: str | None = None
    netns: str | None = None

    @property
    def public_ip(self) -> str:
        """What its instances report as `publicip` and `host_ip`."""
        return self.address or LOOPBACK

    @property
    def resolved_platform(self) -> str:
        """The platform with `host` replaced by this machine's platform."""
        return host_platform() if self.platform == HOST else self.platform


@dataclass
class FakeCluster:
    """A cluster of the fake with its nodes.

    Parameters
    ----------
    name : str
        `cluster_name`; `direct` constraints name it in `cluster`.
    nodes : list[FakeNode]
        Its workers (may be empty: such a cluster never has capacity).
    active : bool
        Whether it reported within the last 30 s; see `FakeOakestra.set_cluster_active`.
    location : str
        `cluster_location`, Oakestra's `"lat,long,radius"` form.
    """

    name: str
    nodes: list[FakeNode] = field(default_factory=list)
    active: bool = True
    location: str = "48.1374,11.5755,1000"
    cluster_id: str = field(default_factory=new_object_id)


@dataclass
class FakeUser:
    """A user of the fake: a Mongo-like document with its roles in the `root` organization."""

    name: str
    password: str = field(repr=False)
    roles: list[str]
    user_id: str = field(default_factory=new_object_id)
    created_at: str = field(default_factory=lambda: datetime.now().strftime("%d/%m/%Y %H:%M"))
    _salt: str = field(default_factory=lambda: secrets.token_hex(8), repr=False)

    def check_password(self, password: str) -> bool:
        """Return whether `password` is this user's, in constant time."""
        return secrets.compare_digest(password.encode(), self.password.encode())

    def document(self) -> dict[str, object]:
        """Return the user as `GET /api/user/<name>` does: with its password hash (a quirk)."""
        digest = hashlib.pbkdf2_hmac("sha256", self.password.encode(), self._salt.encode(), 1000)
        return {
            "_id": oid(self.user_id),
            "name": self.name,
            "email": "",
            "password": f"pbkdf2:sha256:1000${self._salt}${digest.hex()}",
            "created_at": self.created_at,
            "roles": list(self.roles),
        }
