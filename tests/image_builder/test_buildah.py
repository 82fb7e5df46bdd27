"""The Buildah adapter's commands and error translation, against a fake `buildah` on PATH."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from image_builder.buildah import CA_BUNDLE_TARGET, Buildah, BuildahSettings
from image_builder.errors import ContainerBuildError, RegistryError, RegistryUnavailableError

# Output of real Buildah 1.28 runs, replayed by the fake.
PIP_FAILURE = """\
STEP 1/3: FROM 127.0.0.1:5050/flops/base-sklearn@sha256:00
STEP 2/3: COPY flops-requirements.lock /opt/flops/requirements.lock
STEP 3/3: RUN pip install -r /opt/flops/requirements.lock
Collecting flopstest-b==1.0
  Downloading flopstest_b-1.0-py3-none-any.whl (1 kB)
ERROR: Could not find a version that satisfies the requirement flopstest-a<2
ERROR: No matching distribution found for flopstest-a<2
error building at STEP "RUN pip install -r /opt/flops/requirements.lock": exit status 1
Error: building at STEP "RUN pip install -r /opt/flops/requirements.lock": exit status 1"""
REGISTRY_DOWN = """\
Getting image list signatures
Error: Uploading manifest list failed, attempted the following formats: application/vnd.oci.\
image.index.v1+json(pinging container registry 127.0.0.1:5999: Get "http://127.0.0.1:5999/v2/\
": dial tcp 127.0.0.1:5999: connect: connection refused)"""


def _fake_buildah(tmp_path: Path, output: str, exit_code: int) -> BuildahSettings:
    """A `buildah` that records its arguments, prints `output` and exits with `exit_code`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "buildah"
    script.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$*" >> {shlex.quote(str(tmp_path / "calls"))}\n'
        'for a in "$@"; do case "$a" in --digestfile) next=1;; *) '
        '[ -n "$next" ] && echo sha256:abc > "$a"; next=;; esac; done\n'
        f"cat <<'OUT'\n{output}\nOUT\n"
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return BuildahSettings(
        storage_driver="vfs",
        isolation="chroot",
        tls_verify=False,
        ca_bundle=tmp_path / "ca.crt",
        environment=env,
    )


def test_build_passes_storage_isolation_platforms_and_mounts(tmp_path: Path) -> None:
    # Prepare
    buildah = Buildah(_fake_buildah(tmp_path, "--> Using cache 1a2b\nCOMMIT", 0))

    # Execute
    output = buildah.build(
        containerfile=tmp_path / "Containerfile.learner",
        context=tmp_path / "context",
        manifest="flops-learner-1",
        platforms=["linux/amd64", "linux/arm64"],
        volumes=[(tmp_path / "pip.conf", "/etc/pip.conf")],
        pull="false",
    )

    # Assert
    call = (tmp_path / "calls").read_text().split()
    assert call[:3] == ["--storage-driver", "vfs", "build"]
    assert {"--layers=true", "--pull=false", "--tls-verify=false"} <= set(call)
    assert call[call.index("--isolation") + 1] == "chroot"
    assert call[call.index("--network") + 1] == "host"
    assert call[call.index("--platform") + 1] == "linux/amd64,linux/arm64"
    assert call[call.index("--manifest") + 1] == "flops-learner-1"
    assert f"{tmp_path / 'ca.crt'}:{CA_BUNDLE_TARGET}:ro" in call
    assert f"{tmp_path / 'pip.conf'}:/etc/pip.conf:ro" in call
    assert call[-1] == str(tmp_path / "context")
    assert output.cached_steps == 1


def test_a_failed_build_names_the_step_and_keeps_pips_words(tmp_path: Path) -> None:
    # Prepare
    buildah = Buildah(_fake_buildah(tmp_path, PIP_FAILURE, 1), log_file=tmp_path / "log")

    # Execute
    with pytest.raises(ContainerBuildError) as caught:
        buildah.build(
            containerfile=tmp_path / "Containerfile.learner",
            context=tmp_path,
            manifest="m",
            platforms=["linux/arm64"],
        )

    # Assert
    assert caught.value.reason == (
        'buildah build of Containerfile.learner failed: building at STEP "RUN pip install '
        '-r /opt/flops/requirements.lock": exit status 1'
    )
    assert "ERROR: No matching distribution found for flopstest-a<2" in caught.value.output
    assert not any(line.startswith(("Collecting", "  Downloading")) for line in caught.value.output)
    assert "STEP 3/3" in (tmp_path / "log").read_text()


def test_a_push_to_a_stopped_registry_says_so(tmp_path: Path) -> None:
    # Prepare
    buildah = Buildah(_fake_buildah(tmp_path, REGISTRY_DOWN, 125))

    # Execute
    with pytest.raises(RegistryUnavailableError) as caught:
        buildah.push_manifest(
            "m",
            "127.0.0.1:5999/c/r/learner:1",
            registry="127.0.0.1:5999",
            digest_file=tmp_path / "d",
        )

    # Assert
    assert str(caught.value).startswith("the registry at 127.0.0.1:5999 is not reachable: ")
    assert str(caught.value).endswith("; start it or fix FLOPS_REGISTRY")


def test_a_refused_push_is_a_registry_error_and_a_push_returns_the_digest(tmp_path: Path) -> None:
    # Prepare
    refused = Buildah(_fake_buildah(tmp_path, "Error: denied: requested access is denied", 125))

    # Execute / Assert
    with pytest.raises(RegistryError, match="pushing r/c/x:1 failed: denied"):
        refused.push_manifest("m", "r/c/x:1", registry="r", digest_file=tmp_path / "d")
    ok_dir = tmp_path / "ok"
    ok_dir.mkdir()
    ok = Buildah(_fake_buildah(ok_dir, "Writing manifest list to image destination", 0))
    assert ok.push_manifest("m", "r/c/x:1", registry="r", digest_file=ok_dir / "d") == "sha256:abc"


def test_a_missing_buildah_is_reported(tmp_path: Path) -> None:
    # Prepare
    settings = BuildahSettings(environment={"PATH": str(tmp_path)})

    # Execute / Assert
    with pytest.raises(ContainerBuildError, match="cannot run buildah"):
        Buildah(settings).build(
            containerfile=tmp_path / "C", context=tmp_path, manifest="m", platforms=["linux/amd64"]
        )
    Buildah(settings).remove_manifest("m")  # never raises
