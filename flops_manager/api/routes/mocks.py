"""`POST /api/flops/mocks`: put demo data on the learner nodes' data servers (FLOps body)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.exceptions import RequestValidationError
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from flops_manager.api.deps import CurrentCaller, RuntimeDep
from flops_manager.api.errors import AUTH_RESPONSES
from flops_manager.lifecycle.runtime import ManagerRuntime
from flops_utils.ml_data_client import MLDataClient
from flops_utils.mock_data import BUNDLED_DATASETS, load_bundled_dataset, partition_iid

__all__ = ["MockDataConfiguration", "MockDataRequest", "router"]

router = APIRouter(tags=["mock data"], responses=AUTH_RESPONSES)


class MockDataConfiguration(BaseModel):
    """What to put where: a dataset split into partitions, one per learner node, under a tag."""

    model_config = ConfigDict(extra="forbid")

    dataset_name: str = Field(
        description=f"A dataset bundled with scikit-learn: {', '.join(BUNDLED_DATASETS)}.",
        json_schema_extra={"enum": list(BUNDLED_DATASETS)},
    )
    number_of_partitions: int = Field(ge=1, le=1000, description="Partitions (IID).")
    data_tag: str = Field(
        min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$", description="Tag of the data."
    )


class MockDataRequest(BaseModel):
    """The original FLOps mock-data body."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    customer_id: str = Field(
        "Admin",
        validation_alias=AliasChoices("customerID", "customer_id"),
        description="Who asks (informational).",
    )
    mock_data_configuration: MockDataConfiguration = Field(description="What data to provide.")


@router.post("/mocks", status_code=status.HTTP_201_CREATED)
@router.post("/mocks/", status_code=status.HTTP_201_CREATED, include_in_schema=False)
async def provide_mock_data(
    body: MockDataRequest, caller: CurrentCaller, runtime: RuntimeDep
) -> dict[str, Any]:
    """Split the dataset into IID partitions and push partition i to learner node i's server."""
    config = body.mock_data_configuration
    if config.dataset_name not in BUNDLED_DATASETS:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "mock_data_configuration", "dataset_name"),
                    "msg": f"unknown dataset {config.dataset_name!r}; valid datasets: "
                    f"{', '.join(BUNDLED_DATASETS)}",
                    "type": "value_error",
                }
            ]
        )
    return await run_in_threadpool(_push, runtime, config)


def _push(runtime: ManagerRuntime, config: MockDataConfiguration) -> dict[str, Any]:
    runtime.stack.ensure_started()
    table = load_bundled_dataset(config.dataset_name)
    parts = partition_iid(table, config.number_of_partitions, seed=0)
    pushed = []
    for i, part in enumerate(parts):
        address = runtime.stack.data_server(i)
        with MLDataClient(address) as client:
            name = client.push_table(config.data_tag, part)
        pushed.append({"partition": i, "node": i % runtime.stack.nodes, "rows": part.num_rows,
                       "dataset": name})  # fmt: skip
    return {"data_tag": config.data_tag, "partitions": pushed}
