"""The feature matrix's manifest (`data/features/manifest.json`): what the train and test
matrices were made from and what they hold, read by training and evaluation."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

FILE = "manifest.json"


@dataclass(frozen=True)
class FeatureManifest:
    dump_sha256: str
    min_count: int
    real_products: bool
    """Whether the labelled real products of data/real/ were trained on too."""
    features: int
    features_per_family: dict[str, int]
    train_rows: int
    real_train_rows: int
    test_rows: int
    unlabelled_by_state: dict[str, int]
    """The unlabelled food products by evidence state (who the model is for)."""
    slice_weights: dict[str, float]
    """The evaluation slices weighted like those unlabelled products."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureManifest:
        """Read a manifest (extra keys ignored; a missing one is an error: rebuild the features)."""
        data = json.loads(text)
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    @classmethod
    def read(cls, directory: Path) -> FeatureManifest:
        """The manifest of the features in `directory`."""
        path = directory / FILE
        if not path.exists():
            raise FileNotFoundError(
                f"no feature manifest at {path}: materialize feature_matrix first"
            )
        return cls.from_json(path.read_text())
