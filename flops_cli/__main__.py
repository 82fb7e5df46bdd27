"""`python -m flops_cli`: the same as the `flops` command."""

from flops_cli.main import app

app(prog_name="flops")
