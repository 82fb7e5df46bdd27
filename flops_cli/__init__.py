"""The `flops` command-line tool: a thin client of the FLOps manager's REST API."""

from flops_cli.client import ManagerClient, ManagerError

__all__ = ["ManagerClient", "ManagerError"]
