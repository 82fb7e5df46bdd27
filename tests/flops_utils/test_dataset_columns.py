"""`dataset["column"]` on `load_dataset()` data: the original FLOps' way (datasets 2.x) and
today's way (`datasets` 5 `Column`) both work.

The data is the original mock provider's: digits as 8x8 PNGs in an `Image` column and a
`ClassLabel` label, written with `to_parquet` and sent by a plain Flight `do_put`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from flops_data_server import MLDataServer
from flops_utils import ml_repo_building_blocks
from flops_utils.ml_repo_building_blocks import (
    configure_data_source,
    disable_formatted_columns,
    enable_formatted_columns,
    formatted_columns_enabled,
    load_dataset,
)
from tests.compat.original_data import (
    digits_image_dataset,
    push_original_parquet,
    write_original_parquet,
)

ROWS = 120


@pytest.fixture(scope="module")
def digits() -> Any:
    """The first `ROWS` digits as scikit-learn has them, pixels scaled as in the PNGs."""
    bunch = load_digits()
    pixels = np.clip(bunch.images[:ROWS] * 16, 0, 255).astype(np.uint8)
    return pixels, bunch.target[:ROWS]


@pytest.fixture
def original_data(tmp_path: Path) -> Iterator[None]:
    """A data server holding `ROWS` digits pushed the original way under `mnist`, configured."""
    server = MLDataServer(tmp_path / "ml_data", host="127.0.0.1", port=0)
    address = f"grpc://127.0.0.1:{server.port}"
    part = digits_image_dataset().select(range(ROWS))
    push_original_parquet(address, "mnist", write_original_parquet(part, tmp_path / "p.parquet"))
    configure_data_source(address, ["mnist"])
    yield
    ml_repo_building_blocks.clear_data_source()
    server.shutdown()


pytestmark = pytest.mark.usefixtures("original_data")


# --- the original FLOps' way (datasets 2.x) ---------------------------------------------------


def test_numpy_image_column_reshapes_to_one_row_of_pixels_per_image(digits: Any) -> None:
    # Prepare
    pixels, labels = digits
    dataset = load_dataset()
    dataset.set_format("numpy")

    # Execute
    x = dataset["image"].reshape((len(dataset), -1))
    y = dataset["label"]

    # Assert
    assert x.shape == (ROWS, 64)
    np.testing.assert_array_equal(x, pixels.reshape(ROWS, -1))
    np.testing.assert_array_equal(y, labels)


def test_numpy_columns_take_numpy_operations(digits: Any) -> None:
    # Prepare
    pixels, labels = digits
    dataset = load_dataset().with_format("numpy")

    # Execute
    scaled = dataset["image"] / 255.0
    threes = int((dataset["label"] == 3).sum())

    # Assert
    assert scaled.shape == (ROWS, 8, 8) and scaled.max() <= 1.0
    assert threes == int((labels == 3).sum())
    assert dataset["image"].mean() == pytest.approx(pixels.mean())


@pytest.mark.parametrize(
    "derive",
    [
        lambda d: d.train_test_split(test_size=0.25, seed=0)["train"],
        lambda d: d.shuffle(seed=1),
        lambda d: d.select(range(10, ROWS)),
        lambda d: d.filter(lambda row: row["label"] != 3),
        lambda d: d.map(lambda row: {"label": row["label"]}, num_proc=2),
        lambda d: datasets.concatenate_datasets([d, d.select(range(3))]),
    ],
    ids=["train_test_split", "shuffle", "select", "filter", "map_num_proc", "concatenate"],
)
def test_derived_datasets_keep_array_columns(derive: Any) -> None:
    # Prepare
    dataset = load_dataset()
    dataset.set_format("numpy")

    # Execute
    derived = derive(dataset).with_format("numpy")
    x = derived["image"].reshape((len(derived), -1))

    # Assert
    assert isinstance(x, np.ndarray) and x.shape == (len(derived), 64)


def test_with_transform_column_is_the_transformed_column() -> None:
    # Prepare
    def flatten(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        return {"image": [np.asarray(image, dtype=np.float32).ravel() for image in batch["image"]]}

    dataset = load_dataset().with_transform(flatten)

    # Execute
    column = dataset["image"]

    # Assert
    assert isinstance(column, list) and len(column) == ROWS
    assert all(pixels.shape == (64,) for pixels in column)


def test_torch_image_column_is_one_tensor(digits: Any) -> None:
    # Prepare
    pixels, _ = digits
    dataset = load_dataset().with_format("torch")

    # Execute
    x = dataset["image"].reshape((len(dataset), -1))

    # Assert
    assert isinstance(x, torch.Tensor)
    np.testing.assert_array_equal(x.numpy(), pixels.reshape(ROWS, -1))


def test_python_format_columns_are_lists_of_decoded_values(digits: Any) -> None:
    # Prepare
    _, labels = digits
    dataset = load_dataset().with_format(None)

    # Execute
    images, column = dataset["image"], dataset["label"]

    # Assert
    assert isinstance(column, list) and column == labels.tolist()
    assert isinstance(images[0], Image.Image) and images[0].size == (8, 8)


def test_datasets_the_repo_builds_itself_have_array_columns_too() -> None:
    # Prepare: the original learner had datasets 2.x for every dataset, not only FLOps' data
    load_dataset()
    own = datasets.Dataset.from_dict({"x": [[1, 2], [3, 4]]}).with_format("numpy")

    # Execute
    column = own["x"]

    # Assert
    assert isinstance(column, np.ndarray) and column.shape == (2, 2)


# --- today's way (datasets 5 `Column`) ------------------------------------------------------


def _same(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a), np.asarray(b)))


@pytest.mark.parametrize("format_type", [None, "numpy", "torch"])
@pytest.mark.parametrize("name", ["image", "label"])
def test_columns_behave_like_todays_column_objects(format_type: str | None, name: str) -> None:
    # Prepare: what the installed `datasets` answers with its own lazy `Column`
    dataset = load_dataset().with_format(format_type)
    today = datasets.Column(dataset, name)

    # Execute
    column = dataset[name]

    # Assert: iterate, len, index, negative index, slice, list(), membership
    assert len(column) == len(today) == ROWS
    assert all(_same(a, b) for a, b in zip(column, today, strict=True))
    assert _same(column[5], today[5]) and _same(column[-1], today[-1])
    assert _same(column[10:20], today[10:20])
    assert len(list(column)) == ROWS and _same(list(column)[7], list(today)[7])
    if name == "label":
        assert 3 in column


def test_a_python_column_equals_a_list_as_todays_column_does(digits: Any) -> None:
    # Prepare
    _, labels = digits
    dataset = load_dataset()
    dataset.set_format(None)

    # Execute / Assert
    assert (dataset["label"] == labels.tolist()) is True
    assert (datasets.Column(dataset, "label") == labels.tolist()) is True


def test_an_array_column_compares_element_wise_as_in_datasets_2(digits: Any) -> None:
    # Prepare: the one documented difference to today's `Column`, whose `==` gives one bool
    _, labels = digits
    dataset = load_dataset().with_format("numpy")

    # Execute
    compared = dataset["label"] == labels.tolist()

    # Assert
    assert isinstance(compared, np.ndarray) and compared.all()


def test_nested_columns_are_reached_through_datasets_column() -> None:
    # Prepare
    load_dataset()
    rows = datasets.Dataset.from_dict({"meta": [{"source": "a"}, {"source": "b"}]})

    # Execute
    nested = datasets.Column(rows, "meta")["source"]

    # Assert
    assert list(nested) == ["a", "b"]
    assert rows.flatten()["meta.source"] == ["a", "b"]


# --- switching ------------------------------------------------------------------------------


def test_load_dataset_enables_and_disable_restores_todays_columns() -> None:
    # Prepare
    disable_formatted_columns()

    # Execute
    dataset = load_dataset().with_format("numpy")
    enabled = formatted_columns_enabled()
    disable_formatted_columns()

    # Assert
    assert enabled
    assert isinstance(dataset["image"], datasets.Column)
    enable_formatted_columns()
    enable_formatted_columns()
    assert isinstance(dataset["image"], np.ndarray)
