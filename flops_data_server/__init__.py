"""The ML data server of a learner node: tagged datasets over Arrow Flight (port 11027)."""

from flops_data_server.server import MLDataServer

__all__ = ["MLDataServer"]
