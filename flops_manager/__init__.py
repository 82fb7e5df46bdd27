"""FLOps manager: the control plane (REST API, persistence, project lifecycle, orchestrators)."""

__all__: list[str] = []
