"""Reference Flower app of bench/round_overhead.py (legacy-compatible ServerApp/ClientApp)."""
