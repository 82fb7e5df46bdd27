"""`python -m image_builder build`: exit codes, and the events of builds that fail early."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import EventReceiver, free_port
from tests.image_builder.conftest import EXAMPLES, git_repo


def _build(
    *args: str, callback: str | None = None, repo_url: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOPS_")}
    if repo_url:
        env["FLOPS_REPO_URL"] = repo_url
    if callback:
        env.update(FLOPS_CALLBACK_URL=callback, FLOPS_CALLBACK_TOKEN="s3cret-token")
    return subprocess.run(
        [sys.executable, "-m", "image_builder", "build", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _args(repo: str, commit: str, at: str, **overrides: str) -> list[str]:
    options = {
        "repo-url": repo,
        "commit": commit,
        "flavor": "sklearn",
        "platforms": "linux/amd64",
        "registry": at,
        "customer": "test-cli",
        "project-id": "p-cli",
        **overrides,
    }
    return [item for key, value in options.items() for item in (f"--{key}", value)]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"flavor": "caffe"}, "expected one of sklearn, pytorch, tensorflow, keras"),
        ({"platforms": "amd64"}, "expected e.g. linux/amd64,linux/arm64"),
        ({"customer": "---"}, "no letters or digits"),
        ({"registry": "host/path"}, "must be host[:port]"),
        ({"cache-max-mb": "-1"}, "-1 is not in the range x>=0"),
    ],
)
def test_bad_arguments_exit_2(override: dict[str, str], message: str) -> None:
    # Execute
    result = _build(*_args("/nowhere", "abc1234", "127.0.0.1:5050", **override))

    # Assert
    assert result.returncode == 2, result.stderr
    assert message in " ".join(result.stderr.replace("│", " ").split())


def test_a_missing_option_exits_2() -> None:
    result = _build("--repo-url", "/nowhere")
    assert result.returncode == 2
    assert "Missing option" in result.stderr


def test_a_repo_breaking_the_contract_fails_at_check(tmp_path: Path, events: EventReceiver) -> None:
    # Prepare
    commit = git_repo(tmp_path / "repo", {"requirements.txt": "numpy\n", "train.py": "pass\n"})

    # Execute
    result = _build(
        *_args((tmp_path / "repo").as_uri(), commit, "127.0.0.1:5050"), callback=events.url
    )

    # Assert
    assert result.returncode == 1
    assert "image build failed at step check: the repo breaks the ML-repo contract" in result.stderr
    failed = events.wait_for("failed", timeout=10)
    assert failed["source"] == "builder" and failed["project_id"] == "p-cli"
    assert failed["data"]["step"] == "check"
    assert "model_manager.py not found at the repo root" in failed["data"]["reason"]
    assert any("missing_model_manager_file" in line for line in failed["data"]["output"])
    steps = [e["data"]["step"] for e in events.of_type("step_completed")]
    assert events.events[0]["type"] == "started"
    assert steps == ["clone"]
    assert "s3cret-token" not in result.stderr


def test_an_unreachable_registry_fails_with_a_clear_reason(
    tmp_path: Path, events: EventReceiver
) -> None:
    # Prepare
    commit = git_repo(tmp_path / "repo", source=EXAMPLES / "sklearn-digits")
    registry = f"127.0.0.1:{free_port()}"

    # Execute
    result = _build(*_args(str(tmp_path / "repo"), commit, registry), callback=events.url)

    # Assert
    assert result.returncode == 1
    failed = events.wait_for("failed", timeout=10)
    assert failed["data"]["step"] == "resolve"
    assert failed["data"]["reason"].startswith(f"the registry at {registry} is not reachable: ")
    assert failed["data"]["reason"].endswith("start it or fix FLOPS_REGISTRY")
    assert [e["data"]["step"] for e in events.of_type("step_completed")] == ["clone", "check"]
    assert all(e["data"]["duration_s"] >= 0 for e in events.of_type("step_completed"))


def test_credentials_in_the_repo_url_never_reach_events_or_logs(events: EventReceiver) -> None:
    # Execute: the URL from the environment, as the manager passes it; git fails at once.
    url = "https://user:hunter2@127.0.0.1:1/o/repo.git"
    args = _args("unused", "abc1234", "127.0.0.1:5050")[2:]  # no --repo-url
    result = _build(*args, callback=events.url, repo_url=url)

    # Assert
    assert result.returncode == 1
    failed = events.wait_for("failed", timeout=10)
    assert failed["data"]["step"] == "clone"
    assert "hunter2" not in result.stderr + str(events.events)
    assert events.of_type("started")[0]["data"]["repo_url"] == "https://***@127.0.0.1:1/o/repo.git"
