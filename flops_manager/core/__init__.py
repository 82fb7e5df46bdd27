"""Manager core: settings, security (tokens) and the error catalog."""

__all__: list[str] = []
