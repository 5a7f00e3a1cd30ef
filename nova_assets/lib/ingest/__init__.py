"""Bringing dumps and deltas in: download, recognise the format, read it with DuckDB."""
