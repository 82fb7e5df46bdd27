"""Orchestrator backends: one interface (`Orchestrator`) to deploy and watch services."""

from flops_manager.orchestrators.docker_orchestrator import DockerOrchestrator
from flops_manager.orchestrators.local_orchestrator import LocalOrchestrator
from flops_manager.orchestrators.oakestra_orchestrator import OakestraOrchestrator
from flops_manager.orchestrators.orchestrator import (
    Capabilities,
    ClusterInfo,
    DeployError,
    NodeInfo,
    Orchestrator,
    OrchestratorError,
    OrchestratorHealth,
    OrchestratorUnavailableError,
    ServiceNotFoundError,
    ServiceState,
    ServiceStatus,
)
from flops_manager.orchestrators.orchestrator_factory import (
    ManagerOrchestrators,
    create_orchestrator,
    orchestrators_from_settings,
)
from flops_manager.orchestrators.service_spec import (
    Placement,
    PortMapping,
    Resources,
    RestartPolicy,
    ServiceSpec,
)

__all__ = [
    "Capabilities",
    "ClusterInfo",
    "DeployError",
    "DockerOrchestrator",
    "LocalOrchestrator",
    "ManagerOrchestrators",
    "NodeInfo",
    "OakestraOrchestrator",
    "Orchestrator",
    "OrchestratorError",
    "OrchestratorHealth",
    "OrchestratorUnavailableError",
    "Placement",
    "PortMapping",
    "Resources",
    "RestartPolicy",
    "ServiceNotFoundError",
    "ServiceSpec",
    "ServiceState",
    "ServiceStatus",
    "create_orchestrator",
    "orchestrators_from_settings",
]
