"""The monitor readings the dashboard keeps in the home for its next start."""

from __future__ import annotations

from pathlib import Path

from foretell.ui.pages import KeptReports


def test_a_kept_report_comes_back_for_the_same_ledger_only(tmp_path: Path) -> None:
    kept = KeptReports(tmp_path / "dashboard", "/home/ledger")
    report = {"model": "churn/west", "generated_at": "2026-12-05T10:00:00+00:00", "verdict": {"status": "ok"}}
    kept.save("churn/west", report)
    kept.save("movies", {"model": "movies", "verdict": {"status": "alert"}})
    assert KeptReports(tmp_path / "dashboard", "/home/ledger").load() == {
        "churn/west": report,
        "movies": {"model": "movies", "verdict": {"status": "alert"}},
    }
    assert KeptReports(tmp_path / "dashboard", "s3://bucket/ledger").load() == {}  # another ledger's figures
    names = sorted(p.name for p in (tmp_path / "dashboard").iterdir())
    assert names == ["monitor-churn%2Fwest.json", "monitor-movies.json"]  # a slash in a name makes no folder


def test_an_unreadable_or_foreign_file_is_ignored_and_no_folder_is_no_reports(tmp_path: Path) -> None:
    assert KeptReports(tmp_path / "absent", "/l").load() == {}
    folder = tmp_path / "dashboard"
    folder.mkdir()
    (folder / "monitor-a.json").write_text("{not json")
    (folder / "monitor-b.json").write_text('["a list"]')
    (folder / "monitor-c.json").write_text('{"ledger": "/l", "report": "not a dict"}')
    assert KeptReports(folder, "/l").load() == {}


def test_a_home_that_cannot_be_written_keeps_nothing_and_raises_nothing(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    KeptReports(blocked, "/l").save("churn", {"model": "churn"})  # logged, not raised
    assert KeptReports(blocked, "/l").load() == {}
