"""Judging a model: the evaluation, its intervals and breakdowns, the report, promotion."""
