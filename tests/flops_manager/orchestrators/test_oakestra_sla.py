"""Oakestra SLA entries of specs pinned to a node: what the scheduler gets for a learner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from flops_manager.orchestrators import OakestraOrchestrator, Placement, ServiceSpec
from flops_manager.orchestrators.oakestra_sla import application_sla, microservice

SCHEMA = json.loads((Path(__file__).parents[2] / "fakes/oakestra/sla_schema.json").read_text())


def learner(**fields: Any) -> ServiceSpec:
    return ServiceSpec(
        name="l0p1", project_id="p1", role="learner", image="reg/flops/learner:1",
        command=["python", "-m", "flops_learner"], one_shot=True, **fields,
    )  # fmt: skip


def test_a_learner_pinned_to_a_node_gets_one_direct_constraint_and_its_platform() -> None:
    # Execute
    spec = learner(placement=Placement(cluster="edgeA", node="w2"), platforms=["linux/arm64"])
    entry = microservice(spec, namespace="flops")
    sla = application_sla(customer="Admin", name="flopsp1", namespace="flops", specs=[spec])

    # Assert
    assert entry["constraints"] == [{"type": "direct", "cluster": "edgeA", "node": "w2"}]
    assert entry["platform"] == "linux/arm64"
    jsonschema.validate(sla, SCHEMA)


def test_only_oakestra_places_learners_on_registered_nodes() -> None:
    from flops_manager.orchestrators import DockerOrchestrator, LocalOrchestrator

    assert OakestraOrchestrator.capabilities.places_on_nodes
    assert not LocalOrchestrator.capabilities.places_on_nodes
    assert not DockerOrchestrator.capabilities.places_on_nodes
