"""Data as the original FLOps mock data provider stored it on a learner node's data server.

The original provider took a Hugging Face dataset (e.g. `mnist`: an `image` column of the
`Image` feature, PNG bytes, and a `ClassLabel` `label`), wrote each partition with
`Dataset.to_parquet` (so the `datasets` features sit in the parquet schema metadata under
`huggingface`) and sent the file with a plain pyarrow Flight `do_put` whose descriptor is the
path `<data tag>.<hash>.parquet`. These helpers do the same with scikit-learn's bundled 8x8
digits as the pixels, so no download is needed.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

import datasets
import numpy as np
import pyarrow.flight as flight
import pyarrow.parquet as pq
from PIL import Image
from sklearn.datasets import load_digits

__all__ = [
    "DIGIT_NAMES",
    "digits_image_dataset",
    "push_original_parquet",
    "push_original_partitions",
    "write_original_parquet",
]

#: The `ClassLabel` names of the digits, as `mnist` has them.
DIGIT_NAMES = [str(digit) for digit in range(10)]


def _png(pixels: np.ndarray) -> bytes:
    """One grayscale image as PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def digits_image_dataset() -> datasets.Dataset:
    """The 1797 digits as `mnist` looks on the hub: `image` (8x8 PNG) and `label` (ClassLabel).

    The pixels (0-16 in scikit-learn) are scaled by 16 and clipped to 0-255, like MNIST's.
    """
    digits = load_digits()
    pixels = np.clip(digits.images * 16, 0, 255).astype(np.uint8)
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=DIGIT_NAMES)}
    )
    return datasets.Dataset.from_dict(
        {
            "image": [{"bytes": _png(image), "path": None} for image in pixels],
            "label": digits.target.tolist(),
        },
        features=features,
    )


def write_original_parquet(dataset: datasets.Dataset, path: Path) -> Path:
    """Write `dataset` as the original provider did: arrow format, `Dataset.to_parquet`."""
    dataset.with_format("arrow").to_parquet(str(path))
    return path


def push_original_parquet(address: str, data_tag: str, path: Path) -> str:
    """Send a parquet file to a data server with a plain Flight `do_put`; return its name.

    Parameters
    ----------
    address : str
        The data server, `grpc://host:port`.
    data_tag : str
        The tag as stored on the server (the part of the name before the first `.`).
    path : Path
        A parquet file, e.g. from `write_original_parquet`.
    """
    name = f"{data_tag}.{hashlib.md5(path.read_bytes()).hexdigest()}.parquet"
    client = flight.connect(address)
    try:
        writer, _ = client.do_put(flight.FlightDescriptor.for_path(name), pq.read_schema(path))
        writer.write_table(pq.read_table(path))
        writer.close()
    finally:
        client.close()
    return name


def push_original_partitions(
    dataset: datasets.Dataset, addresses: Sequence[str], data_tag: str, workdir: Path
) -> list[str]:
    """Split `dataset` into one contiguous partition per data server and push each there.

    Returns the stored dataset names, in the order of `addresses`.
    """
    names = []
    for index, address in enumerate(addresses):
        part = dataset.shard(num_shards=len(addresses), index=index, contiguous=True)
        path = write_original_parquet(part, workdir / f"{data_tag}-part{index}.parquet")
        names.append(push_original_parquet(address, data_tag, path))
    return names
