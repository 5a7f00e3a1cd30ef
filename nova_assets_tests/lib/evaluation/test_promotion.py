from nova_assets.lib.evaluation.promotion import beats_majority, beats_rules, promotion_decision


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
    assert promotion_decision(report(), None)[0] is True
    assert promotion_decision(report(champion=("2", 0.7)), "2")[0] is True
    promote, reason = promotion_decision(report(champion=("2", 0.8)), "2")
    assert promote is False and "v2 stays champion" in reason
    promote, reason = promotion_decision(report(model=0.15), None)
    assert promote is False and "majority" in reason
    promote, reason = promotion_decision(report(rules=0.85), None)
    assert promote is False and "OFF's rules" in reason
    skipped = report(skipped="champion v1, which takes an older input")
    promote, reason = promotion_decision(skipped, "1")
    assert promote is True and "replaces champion v1" in reason


def test_the_reason_says_what_really_happened():
    assert promotion_decision(report(), None) == (True, "v3 is the first model to pass its checks")
    assert promotion_decision(report(champion=("2", 0.7)), "2") == (
        True,
        "v3 beat champion v2 by 0.1000 mix macro-F1 (0.8000 vs 0.7000 on the same 100 test "
        "products)",
    )
    # A rerun after v3's promotion, its report still scoring it beside v2: nothing happens.
    assert promotion_decision(report(champion=("2", 0.7)), "3") == (
        False,
        "v3 stays champion: nothing new to compare",
    )
    # The first model's rerun: it is champion already, not "the first to pass" again.
    assert promotion_decision(report(), "3") == (False, "v3 stays champion: nothing new to compare")
    # A report that scored the model beside no champion, or another one, decides nothing.
    promote, reason = promotion_decision(report(), "2")
    assert promote is False and reason.startswith("v2 stays champion: the report scored v3")
    promote, reason = promotion_decision(report(champion=("1", 0.1)), "2")
    assert promote is False and "beside champion v1" in reason


def test_gates_on_the_mix():
    # Always 4 is right more often here, but the groups count alike.
    assert beats_majority(report(model=0.5)) and not beats_majority(report(model=0.2))
    assert beats_rules(report(model=0.5, rules=0.5)) and not beats_rules(report(model=0.4))
