from nova_assets.lib.promotion import beats_majority, beats_rules, promotion_decision


def entry(macro_f1: float, accuracy: float = 0.8, version: str | None = None) -> dict:
    out = {"name": "x", "macro_f1": macro_f1, "accuracy": accuracy}
    return out if version is None else {**out, "version": version}


def report(model=0.8, champion=None, majority=0.2, rules=0.5, skipped=None) -> dict:
    return {
        "test_rows": 100,
        "model": entry(model, version="3"),
        "majority": entry(majority, accuracy=0.9),
        "rules": entry(rules),
        "champion": None if champion is None else entry(champion[1], version=champion[0]),
        "champion_skipped": skipped,
    }


def test_promotion_rules():
    assert promotion_decision(report())[0] is True
    assert promotion_decision(report(champion=("2", 0.7)))[0] is True
    promote, reason = promotion_decision(report(champion=("2", 0.8)))
    assert promote is False and "champion kept" in reason
    assert promotion_decision(report(champion=("3", 0.8)))[0] is False
    promote, reason = promotion_decision(report(model=0.15))
    assert promote is False and "majority" in reason
    promote, reason = promotion_decision(report(rules=0.85))
    assert promote is False and "OFF's rules" in reason
    promote, reason = promotion_decision(report(skipped="champion v1, which takes an older input"))
    assert promote is True and "replaces champion v1" in reason


def test_gates_on_the_mix():
    # Always 4 is right more often here, but the groups count alike.
    assert beats_majority(report(model=0.5)) and not beats_majority(report(model=0.2))
    assert beats_rules(report(model=0.5, rules=0.5)) and not beats_rules(report(model=0.4))
