"""Fakes of external systems that behave like the real thing, for tests (see `oakestra`)."""
