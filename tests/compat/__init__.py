"""Helpers that reproduce what users of the original FLOps had: their ML repos and their data."""
