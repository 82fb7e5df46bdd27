"""Tests on the multi-node test bed (network namespaces on a bridge): marker `multinode`."""
