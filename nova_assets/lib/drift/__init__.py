"""Drift between dumps: measured, kept in history, reported."""
