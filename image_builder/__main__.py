"""Entry point: `python -m image_builder build --help`."""

from image_builder.cli import app

app(prog_name="image_builder")
