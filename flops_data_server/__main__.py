"""Run the data server's command line as `python -m flops_data_server`."""

from flops_data_server.cli import app

app(prog_name="flops-data-server")
