"""Undeploying what a project still runs: the one loop the runner, restarts and DELETE share."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from flops_core.errors import TemporaryError
from flops_core.logs import get_logger
from flops_manager.lifecycle.project_store import ProjectStore
from flops_manager.orchestrators import Orchestrator

__all__ = ["UNDEPLOY_TIMEOUT_S", "ServicesNotStoppedError", "Teardown", "undeploy_live"]

_log = get_logger("manager.lifecycle")

#: Seconds a service gets to stop before its orchestrator kills it.
UNDEPLOY_TIMEOUT_S = 10.0


class ServicesNotStoppedError(TemporaryError):
    """Raised when services a user asked to stop could not be undeployed (retry later)."""


@dataclass
class Teardown:
    """What `undeploy_live` did: `(service_id, role)` pairs stopped and those it could not."""

    stopped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str, Exception]] = field(default_factory=list)


def undeploy_live(
    store: ProjectStore, orchestrator: Orchestrator, *, keep: Collection[str] = ()
) -> Teardown:
    """Undeploy every service of the project not yet undeployed, except the roles in `keep`.

    A service the orchestrator cannot undeploy is logged and stays recorded as live, so that
    a later call (a retry, `DELETE`, the next restart) tries again; the others are recorded
    as undeployed.

    Parameters
    ----------
    store : ProjectStore
        The project's records.
    orchestrator : Orchestrator
        The orchestrator its services run on.
    keep : Collection[str]
        Roles to leave running (a completed project's inference service).
    """
    done = Teardown()
    for service_id, role in store.live_services():
        if role in keep:
            continue
        try:
            orchestrator.undeploy(service_id, timeout=UNDEPLOY_TIMEOUT_S)
        except Exception as e:  # one service's failure must not leave the others running
            _log.exception("project=%s cannot undeploy %s %s", store.project_id, role, service_id)
            done.failed.append((service_id, role, e))
            continue
        store.mark_undeployed(service_id)
        done.stopped.append((service_id, role))
    return done
