"""HTTP client of the Oakestra root orchestrator's API: login, token reuse, retries, decoding.

Facts it relies on (../shared/reference/oakestra-api.md, oakestra/oakestra system manager):

- `POST /api/auth/login` with `{"username", "password"}` answers `{"token", ...}`; access
  tokens live 10 minutes. The client reuses a token for at most 9 minutes and logs in again
  when a call answers 401 (expired early, or the root restarted with new keys).
- Several endpoints answer a JSON *string* that contains JSON (`json.dumps` output returned
  again as JSON). `decode()` decodes until it has an object.
- Errors come as flask-smorest bodies (`{"code", "status", "message", "errors"}`), as
  `{"message": ...}`, as flask-jwt-extended's `{"msg": ...}` or as a bare string.

Connection errors and 5xx answers are retried with exponential backoff; what is still failing
afterwards raises `OrchestratorUnavailableError`. Other 4xx answers raise `OakestraHTTPError`.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx

from flops_core.logs import get_logger
from flops_manager.orchestrators.orchestrator import OrchestratorError, OrchestratorUnavailableError

__all__ = ["TOKEN_REUSE_S", "OakestraClient", "OakestraHTTPError", "decode", "error_text"]

_log = get_logger("manager.oakestra")

TOKEN_REUSE_S = 9 * 60.0
"""Oakestra's access tokens live 10 minutes; one is reused for at most this long."""


class OakestraHTTPError(OrchestratorError):
    """Raised when Oakestra refuses a request (4xx other than an expired token); not retried."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"Oakestra answered {method} {path} with HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


def decode(payload: Any) -> Any:
    """Return `payload` with JSON strings that hold JSON decoded, as often as needed."""
    for _ in range(4):
        if not isinstance(payload, str):
            return payload
        text = payload.strip()
        if not text or text[0] not in '{["':
            return payload
        try:
            payload = json.loads(text)
        except json.JSONDecodeError:
            return payload
    return payload


def error_text(response: httpx.Response) -> str:
    """The human part of an Oakestra error reply, short."""
    try:
        body = decode(response.json())
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        # flask-smorest drops abort()'s message: often only {"code", "status"} is left.
        keys = ("message", "msg", "error", "status")
        parts = [str(body[key]) for key in keys if isinstance(body.get(key), str) and body[key]]
        errors = body.get("errors")
        if errors:
            parts.append(json.dumps(errors, sort_keys=True)[:400])
        text = "; ".join(parts) or json.dumps(body)[:400]
    else:
        text = str(body)
    return " ".join(text.split())[:500] or response.reason_phrase


class OakestraClient:
    """Calls the root orchestrator as one configured user; thread-safe.

    Parameters
    ----------
    base_url : str
        The system manager's API, e.g. `http://root:10000`.
    username, password : str
        The account to deploy with. The password is only ever sent to `/api/auth/login`.
    retries : int
        Extra attempts after a connection error or a 5xx answer.
    backoff_s : float
        Delay before the first retry; it doubles with every retry.
    timeout_s : float
        Per-request timeout.
    transport : httpx.BaseTransport | None
        For tests of the client itself.
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str,
        password: str,
        retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.retries = retries
        self.backoff_s = backoff_s
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_s, transport=transport)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_at = 0.0
        self.logins = 0

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        authenticated: bool = True,
        retries: int | None = None,
    ) -> Any:
        """Send one call and return its decoded body (`None` for an empty one).

        Raises
        ------
        OakestraHTTPError
            Oakestra refused the request (4xx).
        OrchestratorUnavailableError
            Oakestra cannot be reached or keeps failing (5xx) after the retries.
        """
        retries = self.retries if retries is None else retries
        relogged = False
        attempt = 0
        while True:
            headers = {"Authorization": f"Bearer {self._access_token()}"} if authenticated else {}
            try:
                response = self._http.request(method, path, json=json_body, headers=headers)
            except httpx.TransportError as e:
                if attempt < retries:
                    self._pause(attempt, method, path, type(e).__name__)
                    attempt += 1
                    continue
                raise OrchestratorUnavailableError(
                    f"the Oakestra root at {self.base_url} is not reachable ({type(e).__name__}"
                    f" on {method} {path}): check FLOPS_OAKESTRA_URL and that the root runs"
                ) from e
            if response.status_code == 401 and authenticated and not relogged:
                # Expired before our 9 minutes were up, or the root rotated its keys.
                self._forget_token()
                relogged = True
                continue
            if response.status_code >= 500 and attempt < retries:
                self._pause(attempt, method, path, f"HTTP {response.status_code}")
                attempt += 1
                continue
            if response.status_code >= 500:
                raise OrchestratorUnavailableError(
                    f"Oakestra keeps failing {method} {path} with HTTP {response.status_code} "
                    f"after {retries + 1} attempts: {error_text(response)}"
                )
            if response.status_code >= 400:
                raise OakestraHTTPError(method, path, response.status_code, error_text(response))
            if not response.content:
                return None
            try:
                return decode(response.json())
            except ValueError:
                return decode(response.text)

    def _pause(self, attempt: int, method: str, path: str, why: str) -> None:
        delay = self.backoff_s * 2**attempt
        _log.warning("oakestra %s %s: %s; retry %s in %.1fs", method, path, why, attempt + 1, delay)
        time.sleep(delay)

    def _forget_token(self) -> None:
        with self._lock:
            self._token = None

    def _access_token(self) -> str:
        with self._lock:
            if self._token is not None and time.monotonic() - self._token_at < TOKEN_REUSE_S:
                return self._token
            body = self._login()
            self._token, self._token_at = body, time.monotonic()
            return body

    def _login(self) -> str:
        try:
            body = self.request(
                "POST",
                "/api/auth/login",
                json_body={"username": self.username, "password": self._password},
                authenticated=False,
            )
        except OakestraHTTPError as e:
            if e.status in (401, 403, 404):
                raise OakestraHTTPError(
                    "POST",
                    "/api/auth/login",
                    e.status,
                    f"{e.detail}: check FLOPS_OAKESTRA_USERNAME and FLOPS_OAKESTRA_PASSWORD",
                ) from e
            raise OrchestratorUnavailableError(
                f"Oakestra login failed with HTTP {e.status}: {e.detail}"
            ) from e
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise OrchestratorUnavailableError("Oakestra's login reply has no token")
        self.logins += 1
        _log.info("logged in to Oakestra at %s as %s", self.base_url, self.username)
        return token
