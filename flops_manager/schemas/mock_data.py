"""Bodies of `/api/flops/mocks`: the original FLOps mock-data request plus `partitioning`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Discriminator, Field, Tag

from flops_core.mock_data import BUNDLED_DATASETS, LABEL_COLUMN
from flops_manager.core.data_tags import DATA_TAG_MAX_LENGTH, DATA_TAG_PATTERN
from flops_manager.services.tokens import CUSTOMER_ID_PATTERN

__all__ = [
    "ACTIVE_MOCK_STATES",
    "DirichletPartitioning",
    "IidPartitioning",
    "MockDataConfiguration",
    "MockDataRequest",
    "MockJobState",
    "Partitioning",
]


class MockJobState(StrEnum):
    """States of a mock-data job: `pending → running → completed | failed`, then `deleted`.

    `cancelled`: deleted while it ran; what it had pushed is dropped.
    """

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    DELETED = "deleted"


#: States in which a job may still push data.
ACTIVE_MOCK_STATES = frozenset({MockJobState.PENDING, MockJobState.RUNNING})


class MockDataConfiguration(BaseModel):
    """What to put where: a dataset split into partitions, one per learner node, under a tag."""

    model_config = ConfigDict(extra="forbid")

    dataset_name: str = Field(
        min_length=1,
        max_length=1024,
        description=f"A dataset bundled with scikit-learn ({', '.join(BUNDLED_DATASETS)}); "
        "a .parquet/.csv file in the manager's datasets directory (FLOPS_DATASETS_DIR, "
        "default <data dir>/datasets), as a path relative to it or an absolute path inside it; "
        "or a Hugging Face hub dataset (`mnist`, `cifar10` as the original FLOps names them, "
        'or `owner/name`): its "train" split with its own columns and features, where the '
        "manager may reach the hub (FLOPS_HUB_DATASETS, HF_ENDPOINT, HF_HUB_OFFLINE; a 503 if "
        "it cannot).",
    )
    number_of_partitions: int = Field(
        ge=1, le=1000, description="Partitions; partition i goes to learner node i mod nodes."
    )
    data_tag: str = Field(
        min_length=1,
        max_length=DATA_TAG_MAX_LENGTH,
        pattern=DATA_TAG_PATTERN,
        description="Tag of the data: 1-128 letters, digits, `_` or `-`. Tags are namespaced "
        "by customer: the data is stored as `<customer>:<tag>` and only the customer's own "
        "projects read it, by naming the same `<tag>` in `data_tags`. `shared:<tag>` (admin "
        "only, as customer Admin) stores the admin's shared data as plain `<tag>`, which every "
        "project may read by naming `shared:<tag>`. Replies show this tag as written and the "
        "data servers' tag as `stored_data_tag`.",
    )
    label_column: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description=f"Column with the labels, for Dirichlet partitioning and the partitions' "
        f"label histograms. Default `{LABEL_COLUMN}` (the bundled datasets' label column; "
        f"files without it can still be split IID).",
    )


class IidPartitioning(BaseModel):
    """Shuffle and cut into partitions of (nearly) equal size."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["iid"] = Field("iid", description="IID partitions.")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seed of the shuffle.")


class DirichletPartitioning(BaseModel):
    """Non-IID: each class is spread over the partitions in Dirichlet(alpha) proportions."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["dirichlet"] = Field(description="Non-IID by a Dirichlet label distribution.")
    alpha: float = Field(
        gt=0,
        le=1e6,
        allow_inf_nan=False,
        description="Concentration > 0: small (0.1) gives each partition few labels, large "
        "(100) is close to IID.",
    )
    seed: int = Field(
        0, ge=0, le=2**32 - 1, description="Seed of the draws; same seed, same split."
    )
    min_size: int = Field(1, ge=1, description="Rows each partition gets at least.")


def _partitioning_kind(value: Any) -> Any:
    """The `kind` of a partitioning; `iid` when it is left out, as its schema documents."""
    if isinstance(value, dict):
        return value.get("kind", "iid")
    return getattr(value, "kind", None)


Partitioning = Annotated[
    Annotated[IidPartitioning, Tag("iid")] | Annotated[DirichletPartitioning, Tag("dirichlet")],
    Discriminator(
        _partitioning_kind,
        custom_error_type="partitioning_kind",
        custom_error_message="partitioning.kind must be 'iid' or 'dirichlet'",
    ),
]


class MockDataRequest(BaseModel):
    """The original FLOps mock-data body, plus the optional `partitioning`."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    customer_id: str = Field(
        "Admin",
        min_length=1,
        max_length=128,
        pattern=CUSTOMER_ID_PATTERN,
        validation_alias=AliasChoices("customerID", "customer_id"),
        description="Whose job, and whose namespace the data tag is stored in; a customer's "
        "token may name only itself (default: the caller).",
    )
    mock_data_configuration: MockDataConfiguration = Field(description="What data to provide.")
    partitioning: Partitioning = Field(
        default_factory=IidPartitioning,
        description='How to split: `{"kind": "iid"}` (default) or `{"kind": "dirichlet", '
        '"alpha": 0.1, "seed": 0}`.',
    )
