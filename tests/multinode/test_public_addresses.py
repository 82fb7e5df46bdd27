"""A manager whose services run on other hosts (`oakestra`) refuses to start with a loopback
address for them, naming the setting to change."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.oakestra import FakeOakestra
from tests.flops_manager.api.manager_process import ManagerProcess
from tests.multinode.stack import OAK_PASSWORD
from tests.multinode.testbed import TestBed

pytestmark = [pytest.mark.multinode, pytest.mark.e2e]


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeOakestra]:
    with FakeOakestra(
        users={"flops": OAK_PASSWORD}, state_dir=tmp_path_factory.mktemp("oakestra")
    ) as started:
        yield started


def refused_start(workdir: Path, fake: FakeOakestra, **settings: str) -> str:
    """Start a manager on `oakestra` with `settings`; return its output once it has exited."""
    manager = ManagerProcess(
        workdir, FLOPS_ORCHESTRATOR="oakestra", FLOPS_SERVICE_RUNTIME="environment",
        FLOPS_OAKESTRA_URL=fake.url, FLOPS_OAKESTRA_USERNAME="flops",
        FLOPS_OAKESTRA_PASSWORD=OAK_PASSWORD, **settings,
    )  # fmt: skip
    try:
        manager.launch()
        code = manager.wait(60)
    finally:
        manager.stop()
    assert code != 0, manager.output()
    return manager.output()


@pytest.mark.parametrize(
    "public_url", [None, "http://127.0.0.1:5072", "http://localhost:5072", "http://[::1]:5072"]
)
def test_a_loopback_callback_url_is_refused_naming_flops_public_url(
    tmp_path: Path, fake: FakeOakestra, public_url: str | None
) -> None:
    settings = {} if public_url is None else {"FLOPS_PUBLIC_URL": public_url}

    output = refused_start(tmp_path, fake, **settings)

    assert "FLOPS_PUBLIC_URL" in output, output


def test_a_loopback_tracking_url_is_refused_naming_its_settings(
    tmp_path: Path, fake: FakeOakestra, bed: TestBed
) -> None:
    host = bed.host_address

    output = refused_start(
        tmp_path, fake, FLOPS_HOST=host, FLOPS_PUBLIC_URL=f"http://{host}:5072"
    )  # MLflow on its default, 127.0.0.1

    assert "FLOPS_PUBLIC_TRACKING_URI" in output and "FLOPS_MLFLOW_HOST" in output, output
