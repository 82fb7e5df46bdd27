"""Carrying projects from `pending` to `completed`: the embedded stack and project runners."""

__all__: list[str] = []
