"""One screen per app area (mode)."""
