"""The fake's REST API: Oakestra's root routes, their auth checks, status codes and bodies.

Encodings of successful replies (Oakestra issue #461; checked in Oakestra v0.4.411's code):

=====================================  =========================================================
Endpoint                               Body
=====================================  =========================================================
POST /api/application/                 double-encoded: a JSON string holding all the caller's
                                       applications
GET /api/applications/<userid>         double-encoded
GET /api/applications/ (Admin)         double-encoded
GET /api/service/<id>                  double-encoded
GET /api/services/<appid>              double-encoded
GET /api/services/ (Admin)             double-encoded
GET /api/application/<id>              ``null`` (the success return is unreachable)
GET /api/clusters/, /active            JSON text, single-encoded, ``text/html``
GET /api/user/<name>, /api/users/      JSON text, single-encoded, ``text/html``
everything else                        plain JSON (``{"message": ...}``, tokens, ``job_id``...)
=====================================  =========================================================

Errors: `abort(...)` gives flask-smorest's `{"code", "status"}` only (the message is lost, see
`responses.py`). Application routes use flask-jwt-extended (`{"msg": ...}`: 401 missing or
expired, 422 undecodable or wrong token type); service, instance and user routes catch every
token problem as 401 `{"message": "Missing authentication token"}`; a missing role is 403
`{"message": "You have not enough permissions!"}`. A path without the trailing slash of a
route that has one is redirected with 308; unknown paths 404, wrong methods 405.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.responses import Response

from tests.fakes.oakestra import responses as r
from tests.fakes.oakestra.model import FakeCluster, FakeUser
from tests.fakes.oakestra.store import Store
from tests.fakes.oakestra.tokens import TokenError, TokenIssuer
from tests.fakes.oakestra.worker import Worker

__all__ = ["Api", "Call"]

_NOT_ENOUGH = "You have not enough permissions!"


class _BadJson(Exception):
    """The body is declared JSON but cannot be parsed."""


@dataclass(frozen=True)
class Call:
    """One request, as the handlers see it."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    params: tuple[str, ...] = ()

    def json(self) -> Any:
        """Flask 2.1's `get_json()`: `None` unless the media type is JSON."""
        media_type = self.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json" and not media_type.endswith("+json"):
            return None
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise _BadJson from e


Handler = Callable[[Call], Response]


class Api:
    """Handlers of the root orchestrator's routes over one fake's state."""

    def __init__(
        self,
        *,
        lock: threading.RLock,
        store: Store,
        clusters: list[FakeCluster],
        tokens: TokenIssuer,
        worker: Worker,
        received_slas: list[Any],
    ) -> None:
        self._lock, self._store, self._clusters = lock, store, clusters
        self._tokens, self._worker, self._received = tokens, worker, received_slas
        table: list[tuple[str, str, Handler]] = [
            ("POST", "/api/auth/login", self.login),
            ("POST", "/api/auth/refresh", self.refresh),
            ("GET", "/api/user/([^/]+)", self.get_user),
            ("GET", "/api/users/", self.list_users),
            ("POST", "/api/application/", self.create_application),
            ("GET", "/api/application/([^/]+)", self.get_application),
            ("PUT", "/api/application/([^/]+)", self.update_application),
            ("DELETE", "/api/application/([^/]+)", self.delete_application),
            ("GET", "/api/applications/", self.all_applications),
            ("GET", "/api/applications/([^/]+)", self.user_applications),
            ("POST", "/api/service/", self.create_services),
            ("GET", "/api/service/([^/]+)", self.get_service),
            ("PUT", "/api/service/([^/]+)", self.update_service),
            ("DELETE", "/api/service/([^/]+)", self.delete_service),
            ("POST", "/api/service/([^/]+)/instance", self.deploy_instance),
            ("DELETE", "/api/service/([^/]+)/instance/([^/]+)", self.undeploy_instance),
            ("GET", "/api/services/", self.all_services),
            ("GET", "/api/services/([^/]+)", self.app_services),
            ("GET", "/api/clusters/", self.clusters),
            ("GET", "/api/clusters/active", self.active_clusters),
        ]
        self._routes = [(method, re.compile(path), handler) for method, path, handler in table]

    def dispatch(self, call: Call) -> Response:
        """Route a request like werkzeug: 308 to the slashed path, 404, 405, or the handler."""
        matches = [(m, p.fullmatch(call.path), h) for m, p, h in self._routes]
        found = [(m, match, h) for m, match, h in matches if match is not None]
        if not found:
            slashed = call.path + "/"
            if not call.path.endswith("/") and any(
                p.fullmatch(slashed) for _, p, _ in self._routes
            ):
                headers = {"Location": slashed}
                return Response(
                    "Redirecting...", status_code=308, headers=headers, media_type="text/html"
                )
            return r.smorest_error(404)
        for method, match, handler in found:
            if method == call.method:
                try:
                    return handler(
                        Call(call.method, call.path, call.headers, call.body, match.groups())
                    )
                except _BadJson:
                    return r.smorest_error(400, {"json": ["Invalid JSON body."]})
                except Exception:  # an unhandled error in a Flask view
                    return r.smorest_error(500)
        return r.smorest_error(405)

    # Authentication helpers ------------------------------------------------------------
    def _jwt_required(self, call: Call, kind: str = "access") -> dict[str, Any] | Response:
        try:
            return self._tokens.verify(
                call.headers.get("authorization"), "refresh" if kind == "refresh" else "access"
            )
        except TokenError as e:
            return r.jsonify({"msg": e.message}, e.status)

    def _jwt_auth_required(self, call: Call) -> dict[str, Any] | Response:
        try:
            return self._tokens.verify(call.headers.get("authorization"), "access")
        except TokenError:
            return r.message("Missing authentication token", 401)

    def _user(self, claims: Mapping[str, Any]) -> FakeUser:
        return self._store.users[claims["sub"]]  # KeyError -> 500, as Oakestra's None["_id"]

    def _issue(self, kind: str, user: FakeUser, roles: list[str]) -> str:
        return self._tokens.issue(
            "refresh" if kind == "refresh" else "access",
            username=user.name,
            roles=roles,
            organization=self._store.organization_id,
        )

    # Authentication and users ----------------------------------------------------------
    def login(self, call: Call) -> Response:
        content = call.json()
        if content is None:
            return r.smorest_error(403)
        username, password = content["username"], content["password"]
        if content.get("organization_name", "root") != "root":
            return r.smorest_error(404)
        user = self._store.users.get(username) if username and password else None
        if user is None or not user.check_password(password):
            return r.smorest_error(401)
        return r.jsonify(
            {
                "token": self._issue("access", user, user.roles),
                "refresh_token": self._issue("refresh", user, user.roles),
            }
        )

    def refresh(self, call: Call) -> Response:
        claims = self._jwt_required(call, "refresh")
        if isinstance(claims, Response):
            return claims
        user = self._store.users.get(claims["sub"])
        if user is None:
            return r.smorest_error(404)
        return r.jsonify({"token": self._issue("access", user, list(claims["roles"]))})

    def get_user(self, call: Call) -> Response:
        claims = self._jwt_auth_required(call)
        if isinstance(claims, Response):
            return claims
        if claims["sub"] != call.params[0]:
            return r.message(_NOT_ENOUGH, 403)
        return r.json_text(self._user(claims).document())

    def list_users(self, call: Call) -> Response:
        claims = self._jwt_auth_required(call)
        if isinstance(claims, Response):
            return claims
        if "Admin" not in claims.get("roles", []):
            return r.message(_NOT_ENOUGH, 403)
        documents = [user.document() for user in self._store.users.values()]
        return r.json_text([{k: v for k, v in d.items() if k != "roles"} for d in documents])

    # Applications ------------------------------------------------------------------------
    def create_application(self, call: Call) -> Response:
        data = call.json()
        claims = self._jwt_required(call)
        if isinstance(claims, Response):
            return claims
        with self._lock:
            self._received.append(data)
            status, apps = self._store.register_app(data, claims["sub"])
        return r.double_encoded(apps) if apps is not None else r.smorest_error(status)

    def get_application(self, call: Call) -> Response:
        claims = self._jwt_required(call)
        if isinstance(claims, Response):
            return claims
        with self._lock:
            found = self._store.find_app(call.params[0], claims["sub"]) is not None
        return r.jsonify(None) if found else r.smorest_error(404)

    def update_application(self, call: Call) -> Response:
        claims = self._jwt_required(call)
        if isinstance(claims, Response):
            return claims
        fields = call.json()
        update = {
            "application_name": fields.get("application_name"),
            "application_namespace": fields.get("application_namespace"),
            "application_desc": fields.get("application_desc", ""),
            "microservices": fields.get("microservices"),
            "userId": claims["sub"],  # Oakestra checks no owner here and hands the app over
        }
        with self._lock:
            app = self._store.apps.get(call.params[0])
            if app is not None:
                app.update(update)
        return r.message("Application is updated")

    def delete_application(self, call: Call) -> Response:
        claims = self._jwt_required(call)
        if isinstance(claims, Response):
            return claims
        with self._lock:
            app = self._store.find_app(call.params[0], claims["sub"])
            if app is None:
                return r.smorest_error(501)
            doomed = [i for s in app["microservices"] for i in self._worker.detach(s)]
            self._store.delete_app_documents(app["_id"])
        self._worker.kill(doomed)
        return r.message("Application Deleted")

    def all_applications(self, call: Call) -> Response:
        claims = self._jwt_required(call)
        if isinstance(claims, Response):
            return claims
        if "Admin" not in claims.get("roles", []):
            return r.message(_NOT_ENOUGH, 403)
        with self._lock:
            return r.double_encoded([self._store.document(a) for a in self._store.apps.values()])

    def user_applications(self, call: Call) -> Response:
        claims = self._jwt_required(call)
        if isinstance(claims, Response):
            return claims
        with self._lock:
            if call.params[0] != self._user(claims).user_id:
                return r.smorest_error(401)
            apps = self._store.user_apps(claims["sub"])
            return r.double_encoded([self._store.document(app) for app in apps])

    # Services ----------------------------------------------------------------------------
    def create_services(self, call: Call) -> Response:
        data = call.json()
        claims = self._jwt_auth_required(call)
        if isinstance(claims, Response):
            return claims
        if not data:
            return r.smorest_error(404)
        with self._lock:
            self._received.append(data)
            try:
                return r.jsonify(self._store.create_services(data, claims["sub"]))
            except Exception:  # every error, its own 404/422 aborts too, becomes a 400
                return r.smorest_error(400)

    def get_service(self, call: Call) -> Response:
        claims = self._jwt_auth_required(call)
        if isinstance(claims, Response):
            return claims
        with self._lock:
            job = self._store.find_service(call.params[0], claims["sub"])
            return r.double_encoded(self._store.document(job)) if job else r.smorest_error(404)

    def update_service(self, call: Call) -> Response:
        claims = self._jwt_auth_required(call)
        if isinstance(claims, Response):
            return claims
        call.json()["applications"][0]["microservices"][0]
        return r.smorest_error(501)

    def delete_service(self, call: Call) -> Response:
        claims = self._jwt_auth_required(call)
        if isinstance(claims, Response):
            return claims
        service_id = call.params[0]
        with self._lock:
            if self._store.find_service(service_id, claims["sub"]) is None:
                return r.smorest_error(500)
            doomed = self._worker.detach(service_id)
            self._store.remove_service(service_id)
        self._worker.kill(doomed)
        return r.message("Job deleted")

    def deploy_instance(self, call: Call) -> Response:
        claims = self._jwt_auth_required(call)
        if isinstance(claims, Response):
            return claims
        service_id = call.params[0]
        with self._lock:
            job = self._store.jobs.get(service_id)
            app = self._store.find_app(job["applicationID"], claims["sub"]) if job else None
            if app is not None and service_id in app["microservices"]:
                self._worker.request_instance(service_id)
        return r.message("ok")

    def undeploy_instance(self, call: Call) -> Response:
        claims = self._jwt_auth_required(call)
        if isinstance(claims, Response):
            return claims
        service_id, which = call.params[0], int(call.params[1])
        with self._lock:
            job = self._store.jobs.get(service_id)
            app = self._store.find_app(job["applicationID"], claims["sub"]) if job else None
            if job is None or app is None or service_id not in app["microservices"]:
                return r.message("ok")
            instances: list[dict[str, Any]] = job["instance_list"]
            removed: list[int] = []
            for instance in instances:  # Oakestra removes while iterating: -1 skips every other
                if which in (instance["instance_number"], -1):
                    removed.append(instance["instance_number"])
                    instances.remove(instance)
            doomed = self._worker.detach(service_id, removed)
        self._worker.kill(doomed)
        return r.message("ok")

    def all_services(self, call: Call) -> Response:
        claims = self._jwt_auth_required(call)
        if isinstance(claims, Response):
            return claims
        if "Admin" not in claims.get("roles", []):
            return r.message(_NOT_ENOUGH, 403)
        with self._lock:
            return r.double_encoded([self._store.document(j) for j in self._store.jobs.values()])

    def app_services(self, call: Call) -> Response:
        claims = self._jwt_auth_required(call)
        if isinstance(claims, Response):
            return claims
        app_id = call.params[0]
        with self._lock:
            if self._store.find_app(app_id, claims["sub"]) is None:
                return r.smorest_error(404)
            jobs = [j for j in self._store.jobs.values() if j["applicationID"] == app_id]
            return r.double_encoded([self._store.document(job) for job in jobs])

    # Clusters (no authentication) --------------------------------------------------------
    def clusters(self, call: Call) -> Response:
        with self._lock:
            return r.json_text([cluster_document(c) for c in self._clusters])

    def active_clusters(self, call: Call) -> Response:
        with self._lock:
            return r.json_text([cluster_document(c) for c in self._clusters if c.active])


def cluster_document(cluster: FakeCluster) -> dict[str, Any]:
    """Return a cluster as `GET /api/clusters/` shows it: candidate fields plus the mapped ones."""
    nodes = [node for node in cluster.nodes if node.active]
    memory = sum(node.memory_mb for node in nodes)
    vcpus = sum(node.vcpus for node in nodes)
    return {
        "_id": {"$oid": cluster.cluster_id},
        "candidate_name": cluster.name,
        "candidate_location": cluster.location,
        "ip": "127.0.0.1",
        "port": "10100",
        "active": cluster.active,
        "cpu_percent": 0.0,
        "cpu_cores": vcpus,
        "vcpus": vcpus,
        "vgpus": 0,
        "gpu_percent": 0.0,
        "memory": memory,
        "number_of_nodes": len(nodes),
        "virtualization": ["docker"] if nodes else [],
        "csi_drivers": [],
        "supported_addons": sorted({addon for node in nodes for addon in node.addons}),
        "more": {},
        "worker_groups": "",
        "cluster_name": cluster.name,
        "cluster_location": cluster.location,
        "aggregated_cpu_percent": 0.0,
        "memory_in_mb": memory,
        "total_cpu_cores": vcpus,
        "total_gpu_cores": 0,
    }
