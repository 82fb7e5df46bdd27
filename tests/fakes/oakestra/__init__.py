"""A fake of the Oakestra root orchestrator API for tests: see `server.FakeOakestra`."""

from tests.fakes.oakestra.model import FakeCluster, FakeNode
from tests.fakes.oakestra.server import FakeOakestra
from tests.fakes.oakestra.sla import SCHEMA_PATH, load_sla_schema, validate_sla
from tests.fakes.oakestra.worker import RunningInstance

__all__ = [
    "SCHEMA_PATH",
    "FakeCluster",
    "FakeNode",
    "FakeOakestra",
    "RunningInstance",
    "load_sla_schema",
    "validate_sla",
]
