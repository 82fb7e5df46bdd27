"""Plain service functions behind the API routes: keyword-only arguments, no HTTP in sight."""

__all__: list[str] = []
