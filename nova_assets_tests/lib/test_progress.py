import io

from nova_assets.lib.progress import Ticker, progress_reporter


def test_progress_reporter_logs_every_5_percent_and_draws_a_bar():
    lines: list[str] = []
    bar = io.StringIO()
    report = progress_reporter(lines.append, every_percent=5, bar=bar)
    for done in range(0, 1001, 10):
        report(done, 1000, "downloaded")
    assert [int(line.split()[2]) for line in lines] == list(range(0, 101, 5))
    assert lines[1] == "dump: downloaded 5 % (50 B of 1000 B)"
    assert bar.getvalue().endswith("\n") and "100 %" in bar.getvalue()
    assert bar.getvalue().count("\n") == 1


def test_the_ticker_calls_about_every_percent_and_ends_at_the_size():
    calls: list[tuple[int, int | None]] = []
    ticker = Ticker(lambda done, total, _activity: calls.append((done, total)))
    for done in range(0, 100_001, 100):
        ticker(done, 100_000)
    ticker.finish(100_000)
    assert calls[0] == (0, 100_000) and calls[-1] == (100_000, 100_000)
    assert 95 <= len(calls) <= 102
    assert len(set(calls)) == len(calls)


def test_each_line_says_what_the_bytes_are_for():
    """A large local dump is hashed, not downloaded: its lines say so."""
    lines: list[str] = []
    ticker = Ticker(progress_reporter(lines.append), "hashed")
    ticker(0, 2 << 30)
    ticker.finish(2 << 30)
    assert lines == ["dump: hashed 0 % (0 B of 2.0 GB)", "dump: hashed 100 % (2.0 GB of 2.0 GB)"]
