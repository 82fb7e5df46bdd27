"""Applications and services ("jobs") of the fake, stored as Oakestra's resource abstractor does.

Every method is called under the fake's lock. Documents keep Oakestra's shapes: an application
is the SLA's application object plus `userId`, `applicationID` and the list of its service ids
in `microservices`; a job is the SLA's microservice object (unknown keys kept) plus `job_name`,
`microserviceID`, `applicationID`, `app_name`, `app_ns`, `service_name`, `service_ns`, `image`,
`next_instance_progressive_number`, `instance_list` and, once deployed, `status` and
`status_detail`. Ids are ObjectId-like hex strings, shown as `{"$oid": ...}` by `*_document`.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.fakes.oakestra.model import FakeUser, new_object_id, oid
from tests.fakes.oakestra.sla import SlaRejected, check_sla

__all__ = ["Store"]

Document = dict[str, Any]


class Store:
    """Users, applications and jobs of one fake Oakestra."""

    def __init__(self, users: list[FakeUser]) -> None:
        self.users = {user.name: user for user in users}
        self.organization_id = new_object_id()
        self.apps: dict[str, Document] = {}
        self.jobs: dict[str, Document] = {}

    # Presentation ------------------------------------------------------------------------
    @staticmethod
    def document(doc: Document) -> Document:
        """Return a deep copy of a stored document with `_id` as `{"$oid": ...}`."""
        shown = copy.deepcopy(doc)
        shown["_id"] = oid(doc["_id"])
        return shown

    def user_apps(self, username: str) -> list[Document]:
        """Return the user's applications, oldest first."""
        return [app for app in self.apps.values() if app["userId"] == username]

    def find_app(self, app_id: Any, username: str) -> Document | None:
        """Return the user's application `app_id`, or `None`."""
        app = self.apps.get(app_id) if isinstance(app_id, str) else None
        return app if app is not None and app["userId"] == username else None

    def find_service(self, service_id: str, username: str) -> Document | None:
        """Return a job of one of the user's applications, or `None` (Oakestra's ownership)."""
        for app in self.user_apps(username):
            if service_id in app["microservices"]:
                return self.jobs.get(service_id)
        return None

    # Registration ------------------------------------------------------------------------
    def register_app(self, sla: Any, username: str) -> tuple[int, list[Document] | None]:
        """`POST /api/application/`: return (200, all the user's apps) or (error status, None).

        Not atomic, as in Oakestra: with several applications in one SLA, those before a
        conflicting one stay registered.
        """
        try:
            check_sla(sla)
        except SlaRejected as e:
            return e.status, None
        for application in sla["applications"]:
            name = application.get("application_name")
            namespace = application.get("application_namespace")
            if any(
                app["application_name"] == name and app["application_namespace"] == namespace
                for app in self.user_apps(username)
            ):
                return 409, None
            app = copy.deepcopy(application)
            app.pop("action", None)
            app.pop("_id", None)
            microservices = app.get("microservices") or []
            app["userId"] = username
            app["microservices"] = []
            app_id = new_object_id()
            self.apps[app_id] = {"_id": app_id, **app, "applicationID": app_id}
            if microservices:
                inner = copy.deepcopy(application)
                inner["applicationID"] = app_id
                try:
                    self.create_services(
                        {
                            "sla_version": sla["sla_version"],
                            "customerID": username,
                            "applications": [inner],
                        },
                        username,
                    )
                except Exception:  # Oakestra deletes the app again and answers 500
                    self.delete_app_documents(app_id)
                    return 500, None
        return 200, [self.document(app) for app in self.user_apps(username)]

    def create_services(self, sla: Any, username: str) -> Document:
        """`POST /api/service/`: add the SLA's services to `applications[0].applicationID`.

        Raises
        ------
        SlaRejected
            Schema/version errors (422/500) or an unknown application (404).
        KeyError, IndexError, TypeError
            A malformed SLA, as Oakestra would raise them.
        """
        check_sla(sla)
        application = sla["applications"][0]
        app = self.find_app(application["applicationID"], username)
        if app is None:
            raise SlaRejected(404, "application not found")
        deployed: list[Document] = []
        failed: list[Document] = []
        last_id = ""
        for microservice in application["microservices"]:
            job = self._job_structure(app, copy.deepcopy(microservice))
            last_id = new_object_id()
            self.jobs[last_id] = {"_id": last_id, **job, "microserviceID": last_id}
            app["microservices"].append(last_id)
            rr_ip_problem = self._rr_ip_problem(self.jobs[last_id])
            if rr_ip_problem is None:
                deployed.append({"service_name": job["service_name"], "status": 200})
            else:  # the network component refuses it: Oakestra deletes the service again
                self.remove_service(last_id)
                failed.append(
                    {
                        "service_name": job["service_name"],
                        "message": "failed to deploy service",
                        "status": 500,
                    }
                )
        return {"job_id": last_id, "deployed_services": deployed, "failed_services": failed}

    @staticmethod
    def _job_structure(app: Document, microservice: Document) -> Document:
        microservice["applicationID"] = app["applicationID"]
        microservice["app_name"] = app["application_name"]
        microservice["app_ns"] = app["application_namespace"]
        microservice["service_name"] = microservice["microservice_name"]
        microservice["service_ns"] = microservice["microservice_namespace"]
        microservice["image"] = microservice["code"]
        microservice["next_instance_progressive_number"] = 0
        microservice["instance_list"] = []
        if microservice["virtualization"] == "container":
            microservice["virtualization"] = "docker"
        addresses = microservice.get("addresses")
        if isinstance(addresses, dict):
            microservice["RR_ip"] = addresses.get("rr_ip")
            microservice["RR_ip_v6"] = addresses.get("rr_ip_v6")
        if microservice["virtualization"] == "unikernel":
            microservice["arch"] = microservice["arch"]  # KeyError without `arch`, as Oakestra
        job_name = ".".join(
            [
                app["application_name"],
                app["application_namespace"],
                microservice["microservice_name"],
                microservice["microservice_namespace"],
            ]
        )
        return {"job_name": job_name, **microservice}

    def _rr_ip_problem(self, job: Document) -> str | None:
        rr_ip = job.get("RR_ip")
        if not rr_ip:
            return None
        if not str(rr_ip).startswith("10.30."):
            return f"rr_ip {rr_ip} is not in 10.30.0.0/16"
        others = (other for other in self.jobs.values() if other["_id"] != job["_id"])
        if any(other.get("RR_ip") == rr_ip for other in others):
            return f"rr_ip {rr_ip} is already used"
        return None

    # Removal -----------------------------------------------------------------------------
    def remove_service(self, service_id: str) -> Document | None:
        """Delete a job and remove it from its application; return the job, if it existed."""
        job = self.jobs.pop(service_id, None)
        if job is not None:
            app = self.apps.get(job["applicationID"])
            if app is not None and service_id in app["microservices"]:
                app["microservices"].remove(service_id)
        return job

    def delete_app_documents(self, app_id: str) -> list[str]:
        """Delete an application and its jobs; return the ids of the jobs deleted."""
        app = self.apps.pop(app_id, None)
        if app is None:
            return []
        service_ids = list(app["microservices"])
        for service_id in service_ids:
            self.jobs.pop(service_id, None)
        return service_ids
