"""Entry point: `python -m flops_learner --help`."""

import os

# Flower reads this when it is imported; FLOps sends no usage telemetry anywhere.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from flops_learner.cli import app

app(prog_name="flops_learner")
