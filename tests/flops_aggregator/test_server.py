"""The best model is the one with the lowest evaluation loss, ties broken by accuracy."""

from __future__ import annotations

from flwr.common import Parameters

from flops_aggregator.server import BestModel, RoundResult

EMPTY = Parameters(tensors=[], tensor_type="numpy.ndarray")


def test_lower_loss_wins() -> None:
    best = BestModel(1, EMPTY, loss=0.5, accuracy=0.9)
    assert best.beaten_by(0.4, 0.1)
    assert not best.beaten_by(0.6, 1.0)


def test_equal_loss_is_decided_by_accuracy() -> None:
    best = BestModel(1, EMPTY, loss=0.5, accuracy=0.9)
    assert best.beaten_by(0.5, 0.95)
    assert not best.beaten_by(0.5, 0.9)


def test_a_round_without_evaluation_never_wins_over_an_evaluated_one() -> None:
    assert not BestModel(1, EMPTY, loss=0.5, accuracy=None).beaten_by(None, None)
    assert BestModel(1, EMPTY, loss=None, accuracy=None).beaten_by(3.0, None)


def test_round_metrics_leave_out_unknown_values() -> None:
    result = RoundResult(
        round=2, duration_s=0.5, wait_s=0.25, loss=None, accuracy=0.8, fit_examples=100,
        evaluate_examples=20, fit_failures=1, evaluate_failures=0, learners=2,
    )  # fmt: skip
    assert result.metrics == {
        "accuracy": 0.8,
        "examples": 100.0,
        "evaluate_examples": 20.0,
        "round_duration_s": 0.5,
        "learner_wait_s": 0.25,
        "fit_failures": 1.0,
        "evaluate_failures": 0.0,
        "learners": 2.0,
    }
