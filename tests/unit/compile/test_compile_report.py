"""The compile report: its recorded form reads back, and `models show` describes every outcome."""

from __future__ import annotations

from dataclasses import replace

from foretell.compile import CompileReport, describe_outcome


def test_a_report_reads_back_from_its_recorded_form() -> None:
    report = CompileReport(
        "passed",
        "treelite",
        parity={"rows": 16_384, "tolerance": 1e-6, "max_abs_diff": {"proba": 2e-8}},
        speed={"speedup": {"single_row": 40.0}},
        toolchain={"treelite": "4.8"},
        seconds=1.23456,
        settings={"evaluator": "quickscorer"},
    )
    again = CompileReport.from_dict(report.to_dict())
    assert again == replace(report, seconds=1.235)  # recorded to the millisecond
    assert again.used


def test_a_report_recorded_before_settings_existed_still_reads() -> None:
    old = {"status": "failed", "compiler": "onnx", "reason": "parity proof failed: score differs"}
    report = CompileReport.from_dict(old)
    assert (report.status, report.settings, report.seconds, report.used) == ("failed", {}, 0.0, False)


def test_each_outcome_is_one_line_saying_which_predictor_answers() -> None:
    passed = {
        "status": "passed",
        "compiler": "treelite",
        "parity": {"rows": 16_384, "tolerance": 1e-6, "max_abs_diff": {"proba": 2e-8, "score": 0.0}},
        "speed": {"speedup": {"single_row": 40.0}},
        "settings": {"evaluator": "quickscorer"},
    }
    assert describe_outcome(passed) == (
        "compiled with treelite (bit-vector tables): parity passed on 16,384 rows "
        "(max abs diff 2e-08 ≤ 1e-06, labels identical); one row 40× faster"
    )
    assert describe_outcome({"status": "failed", "reason": "parity proof failed: x"}) == (
        "keeps its original predictor: parity proof failed: x"
    )
    assert describe_outcome({"status": "unsupported", "reason": "user code"}) == (
        "keeps its original predictor (not compilable): user code"
    )
