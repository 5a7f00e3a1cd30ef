"""Every setting the platform takes from the environment, read in one place and only when asked:
`Settings.from_env()` is called where a process starts its work (the definitions' resources,
the CLIs), never at import, and nothing else reads `os.environ`.

Values stay as the environment spells them ("" when unset); their defaults live with what they
decide (paths.py for the data dir and the MLflow store, the sensors' interval and cron).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

NAMES = (
    "NOVA_DATA_DIR",
    "NOVA_INCOMING_DIR",
    "NOVA_DUMP_URL",
    "NOVA_DELTA_URL",
    "NOVA_URL_CHECK_SECONDS",
    "NOVA_SENSOR_SECONDS",
    "NOVA_REFRESH_CRON",
    "NOVA_OBJECT_STORE",
    "AWS_ENDPOINT_URL",
    "MLFLOW_TRACKING_URI",
    "NOVA_MLFLOW_UI_URL",
    "NOVA_DAGSTER_UI_URL",
    "RAY_ADDRESS",
)
"""The variables the platform reads (README, "Settings")."""


@dataclass(frozen=True)
class Settings:
    """The platform's environment at one moment: each variable of NAMES, "" when unset."""

    values: Mapping[str, str]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        return cls({name: env.get(name, "") for name in NAMES})

    def get(self, name: str) -> str:
        if name not in NAMES:
            raise KeyError(f"{name} is not one of the platform's settings (settings.NAMES)")
        return self.values.get(name, "")

    def is_set(self, name: str) -> bool:
        return bool(self.get(name))

    @property
    def data_dir(self) -> str:
        return self.get("NOVA_DATA_DIR")

    @property
    def incoming_dir(self) -> str:
        return self.get("NOVA_INCOMING_DIR")

    @property
    def tracking_uri(self) -> str:
        return self.get("MLFLOW_TRACKING_URI")

    @property
    def dump_url(self) -> str:
        return self.get("NOVA_DUMP_URL")

    @property
    def sensor_seconds(self) -> int:
        return int(self.get("NOVA_SENSOR_SECONDS") or 30)

    @property
    def refresh_cron(self) -> str:
        return self.get("NOVA_REFRESH_CRON") or "0 4 * * 1"

    @property
    def object_store(self) -> str:
        return self.get("NOVA_OBJECT_STORE")

    @property
    def object_store_endpoint(self) -> str:
        return self.get("AWS_ENDPOINT_URL")
