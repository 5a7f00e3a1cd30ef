"""Dagster definitions, one folder per domain. An asset module imports at its top only what
loading the definitions needs; a step imports the libraries it computes with (scikit-learn,
MLflow, skops) in its own body, so every run worker, code server and `dg` command starts in
about two seconds, not eight."""
