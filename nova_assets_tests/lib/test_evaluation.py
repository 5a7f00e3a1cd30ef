import json

import numpy as np

from nova_assets.lib import evaluation as ev


def metrics(accuracy: float, macro_f1: float) -> dict:
    return {"accuracy": accuracy, "macro_f1": macro_f1}


def test_metrics_by_hand():
    y_true = np.array([1, 1, 2, 3, 4, 4, 4, 4])
    y_pred = np.array([1, 4, 2, 3, 4, 4, 4, 3])
    m = ev.classification_metrics(y_true, y_pred)
    assert m["accuracy"] == 6 / 8
    assert m["per_class"]["1"] == {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2}
    assert m["per_class"]["3"]["precision"] == 0.5
    assert m["confusion_matrix"][0] == [1, 0, 0, 1]
    f1_4 = 2 * 0.75 * 0.75 / 1.5
    assert abs(m["macro_f1"] - (2 / 3 + 1 + 2 / 3 + f1_4) / 4) < 1e-12


def test_majority_class():
    assert ev.majority_class(np.array([4, 4, 3, 1, 4])) == 4


def report(model, champion=None, majority=(0.6, 0.2)):
    return {
        "test_rows": 100,
        "model": {"version": "3", **metrics(*model)},
        "majority": metrics(*majority),
        "champion": None
        if champion is None
        else {"version": champion[0], **metrics(*champion[1:])},
    }


def test_promotion_rules():
    assert ev.promotion_decision(report((0.9, 0.8)))[0] is True
    assert ev.promotion_decision(report((0.9, 0.8), ("2", 0.9, 0.7)))[0] is True
    promote, reason = ev.promotion_decision(report((0.9, 0.8), ("2", 0.9, 0.8)))
    assert promote is False and "champion kept" in reason
    assert ev.promotion_decision(report((0.9, 0.8), ("3", 0.9, 0.8)))[0] is False
    promote, reason = ev.promotion_decision(report((0.5, 0.8)))
    assert promote is False and "majority" in reason


def test_report_files(tmp_path):
    y = np.array([1, 2, 3, 4, 4])
    m = ev.classification_metrics(y, y)
    full = {
        "test_rows": 5,
        "dump_sha256": "ab" * 32,
        "model": {"version": "1", **m},
        "reference": m,
        "majority": ev.classification_metrics(y, np.full(5, 4)),
        "champion": None,
    }
    files = ev.write_report(full, tmp_path)
    assert json.loads(files["json"].read_text())["model"]["accuracy"] == 1.0
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "evaluation.png" in files["md"].read_text()
    assert "data:image/png;base64," in ev.report_markdown(full, files["png"].read_bytes())
