"""No module is over 450 lines (issue 14): a module owns one idea, and one that outgrows it is split."""

from pathlib import Path

MAX_LINES = 450
SOURCE = Path(__file__).parents[2] / "src" / "foretell"  # this checkout's source, whatever is installed


def test_no_module_is_over_the_line_limit() -> None:
    modules = sorted(SOURCE.rglob("*.py"))
    assert len(modules) > 100  # the whole package was found
    counts = {
        path.relative_to(SOURCE).as_posix(): len(path.read_text(encoding="utf-8").splitlines()) for path in modules
    }
    over = {name: lines for name, lines in counts.items() if lines > MAX_LINES}
    assert over == {}, f"modules over {MAX_LINES} lines (split each by what its parts own): {over}"
