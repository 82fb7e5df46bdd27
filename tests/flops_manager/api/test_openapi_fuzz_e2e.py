"""Property-based run over the whole OpenAPI description against a real manager: no 5xx.

Schemathesis generates requests for every documented operation from the manager's own
`/api/flops/openapi.json`, as the admin and as a customer, schema-valid ones and invalid ones,
and sends them to a real `python -m flops_manager` (embedded default, local repos allowed).
Every answer must be below 500 and, where the description documents it, match the documented
content type and response schema.

The description is narrowed in three places, so that what is generated can run here:
`ml_repo_url` is one of two loopback Git repositories this test makes (a copy of
`examples/sklearn-digits` and a clone of it), learner counts and rounds are small, and
`ml_repo_ref` is a short name (what a hostile ref does is tested where refs are checked); data
tags, strategies and learner platforms are drawn from what the validators accept, so that most
generated projects really start, and mock data names bundled datasets too, in few partitions.
Every project a request creates is cancelled at once, every mock-data job deleted, and the
manager stopped. The run is bounded: a few examples per operation and a total budget.
"""

from __future__ import annotations

import copy
import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
)
from schemathesis.core.failures import FailureGroup

from flops_aggregator.strategies import STRATEGIES
from tests.fakes.hf_hub import FakeHub
from tests.flops_manager.api.conftest import ADMIN_TOKEN, ROOT
from tests.flops_manager.api.manager_process import FINAL, ManagerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

#: Examples per operation, token and generation mode, and the whole run's time budget.
EXAMPLES = 25
BUDGET_S = 180.0


def _git_repo(target: Path) -> list[str]:
    """`examples/sklearn-digits` as a Git repo with `main` and a branch; both file:// URLs."""
    shutil.copytree(ROOT / "examples" / "sklearn-digits", target)
    git = [
        "git",
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@t.invalid",
        "-c",
        "init.defaultBranch=main",
    ]
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "example"],
                 ["branch", "fuzz"]):  # fmt: skip
        subprocess.run([*git, *args], cwd=target, check=True)
    copy_ = target.parent / f"{target.name}-copy"
    subprocess.run(["git", "clone", "-q", str(target), str(copy_)], check=True)
    return [f"file://{target}", f"file://{copy_}"]


def _narrowed(description: dict[str, Any], repo_urls: list[str]) -> dict[str, Any]:
    """The manager's OpenAPI description with what may be generated narrowed (see above)."""
    narrowed = copy.deepcopy(description)
    schemas = narrowed["components"]["schemas"]
    project = schemas["ProjectCreate"]["properties"]
    project["ml_repo_url"] = {"type": "string", "enum": repo_urls}
    project["ml_repo_ref"] = {
        "anyOf": [{"type": "string", "pattern": "^(main|fuzz|[a-z]{1,8})$"}, {"type": "null"}]
    }
    training = schemas["TrainingConfiguration"]["properties"]
    for name, most in (("training_rounds", 2), ("training_cycles", 2),
                       ("min_available_clients", 2), ("min_fit_clients", 2),
                       ("min_evaluate_clients", 2), ("round_timeout_s", 20),
                       ("connect_timeout_s", 20)):  # fmt: skip
        training[name]["maximum"] = most
    training["learners"] = {
        "anyOf": [{"type": "integer", "minimum": 1, "maximum": 2}, {"type": "null"}]
    }
    # What validators check beyond the description (data tags are names, one platform per
    # learner): without it, nine of ten generated bodies are 422s and few projects start.
    training["data_tags"]["items"] = {"type": "string", "pattern": "^[a-z0-9_-]{1,16}$"}
    project["learner_platforms"] = {"type": "null"}
    training["strategy"] = {"type": "string", "enum": list(STRATEGIES)}
    # Mock data: bundled datasets too (else every name is unknown), few partitions.
    mock = schemas["MockDataConfiguration"]["properties"]
    mock["dataset_name"] = {"anyOf": [{"enum": ["iris", "digits"]}, mock["dataset_name"]]}
    mock["number_of_partitions"]["maximum"] = 4
    return narrowed


@dataclass
class Findings:
    """What the run saw: answers per operation, server errors, documentation mismatches."""

    answers: dict[str, list[int]] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    created_projects: list[str] = field(default_factory=list)


class StartedManager(ManagerProcess):
    """A manager that is ready only once MLflow answers, not while it is still `starting`.

    `/health` is 200 while the embedded stack starts; a health answer cached from those
    seconds is a 503 just after (reported), which is not what this test is about.
    """

    def ready(self, health: httpx.Response) -> bool:
        """A 200 whose tracking component is `ok`."""
        return health.status_code == 200 and health.json()["components"].get("tracking") == "ok"


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    workdir = tmp_path_factory.mktemp("fuzz-manager")
    # Generated dataset names that look like hub ids are asked of a hub that has no datasets
    # (a 422); the session's default hub is offline, which makes them a documented 503.
    with FakeHub({}) as hub:
        process = StartedManager(
            workdir, FLOPS_LOCAL_NODES="2", HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="0"
        )
        try:
            process.start()
            yield process
        finally:
            _clean_up(process)
            process.stop()


def _clean_up(manager: ManagerProcess) -> None:
    """Cancel every project still active and delete every mock-data job."""
    if manager.process is None or manager.process.poll() is not None:
        return
    listed = manager.api("GET", "/projects", params={"limit": 500})
    for project in listed.json() if listed.status_code == 200 else []:
        if project["state"] not in FINAL:
            manager.api("DELETE", f"/projects/{project['id']}")
    jobs = manager.api("GET", "/mocks")
    for job in jobs.json() if jobs.status_code == 200 else []:
        if job.get("state") not in {"deleted", "cancelled"}:
            manager.api("DELETE", f"/mocks/{job['id']}")


def _run(
    manager: ManagerProcess,
    schema: Any,
    headers: dict[str, str],
    findings: Findings,
    deadline: float,
) -> None:
    """Every operation, schema-valid then invalid examples, as the holder of `headers`."""
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=EXAMPLES, deadline=None, database=None,
                      phases=[Phase.generate], suppress_health_check=list(HealthCheck))  # fmt: skip
            @given(case=operation.as_strategy(generation_mode=mode))
            def send(case: Any) -> None:
                if time.monotonic() > deadline:
                    return
                _send(manager, case, headers, findings)

            try:
                send()
            except Unsatisfiable:  # nothing to make invalid (GET /health has no input)
                assert mode is GenerationMode.NEGATIVE, operation.label


def _send(manager: ManagerProcess, case: Any, headers: dict[str, str], findings: Findings) -> None:
    label = f"{case.method.upper()} {case.path}"
    try:
        response = case.call(base_url=manager.url, headers=headers, timeout=60)
    except Exception as e:  # a broken connection is a server error too
        findings.server_errors.append(f"{label}: {type(e).__name__}: {e}")
        return
    findings.answers.setdefault(label, []).append(response.status_code)
    if response.status_code >= 500:
        findings.server_errors.append(
            f"{label} -> {response.status_code} {response.text[:200]}\n{case.as_curl_command()}"
        )
    elif 200 <= response.status_code < 300:
        try:
            case.validate_response(
                response, checks=[content_type_conformance, response_schema_conformance]
            )
        except (FailureGroup, AssertionError) as e:
            findings.mismatches.append(f"{label} -> {response.status_code}: {str(e)[:300]}")
    if label == "POST /api/flops/projects" and response.status_code == 201:
        project_id = response.json()["id"]
        findings.created_projects.append(project_id)
        manager.api("DELETE", f"/projects/{project_id}")  # cancelled at once
    if label == "POST /api/flops/mocks" and response.status_code == 201:
        manager.api("DELETE", f"/mocks/{response.json()['id']}")


def test_no_generated_request_gets_a_server_error(manager: ManagerProcess, tmp_path: Path) -> None:
    # Prepare: loopback repos, the narrowed description, an admin and a customer token
    repo_urls = _git_repo(tmp_path / "sklearn-digits")
    description = httpx.get(f"{manager.url}/api/flops/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(_narrowed(description, repo_urls))
    customer = manager.api("POST", "/tokens", json={"customer_id": "fuzz-customer"})
    assert customer.status_code == 201, customer.text
    holders = {  # the customer first: the admin's generated DELETE /tokens/{id} may revoke it
        "customer": {"Authorization": f"Bearer {customer.json()['token']}"},
        "admin": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    }
    findings = Findings()
    deadline = time.monotonic() + BUDGET_S

    # Execute
    for headers in holders.values():
        _run(manager, schema, headers, findings, deadline)
    _clean_up(manager)

    statuses = Counter(code for codes in findings.answers.values() for code in codes)
    print(f"{sum(statuses.values())} requests over {len(findings.answers)} operations, "
          f"answers {dict(sorted(statuses.items()))}, {len(findings.created_projects)} "
          f"projects created and cancelled")  # fmt: skip

    # Assert: no 5xx, documented shapes, and POST /projects really created projects
    assert not findings.server_errors, "\n\n".join(findings.server_errors)
    assert not findings.mismatches, "\n\n".join(findings.mismatches)
    operations = {f"{op.ok().method.upper()} {op.ok().path}" for op in schema.get_all_operations()}
    assert operations <= set(findings.answers), operations - set(findings.answers)
    assert findings.created_projects, findings.answers.get("POST /api/flops/projects")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/projects", {"ml_repo_url": "https://[x", "ml_model_flavor": "sklearn",
                       "training_configuration": {"data_tags": ["digits"]}},
         ["body", "ml_repo_url"]),
        ("/mocks", {"mock_data_configuration": {"dataset_name": "a\u0000b.csv",
                    "number_of_partitions": 2, "data_tag": "x"}},
         ["body", "mock_data_configuration", "dataset_name"]),
    ],
    ids=["repo-url-no-url", "dataset-name-with-nul"],
)  # fmt: skip
def test_names_the_os_cannot_take_are_422_not_500(
    manager: ManagerProcess, path: str, body: dict[str, Any], field: list[str]
) -> None:
    # found by the run above: urlsplit and file paths raise ValueError on these
    response = manager.api("POST", path, json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == field
