import json
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", [name, *argv])
    module = runpy.run_path(str(EXAMPLES / name))
    return module["main"](argv)


def test_rbm_digits_example_small(tmp_path, monkeypatch):
    metrics = run_example(
        "rbm_digits.py",
        [
            "--hidden",
            "4",
            "--epochs",
            "3",
            "--chains",
            "10",
            "--eval-every",
            "1",
            "--trace-sweeps",
            "50",
            "--output",
            str(tmp_path),
            "--no-progress",
        ],
        monkeypatch,
    )
    written = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "test_log_likelihood",
        "train_log_likelihood",
        "independent_test_log_likelihood",
        "max_rhat",
        "min_ess",
    ):
        assert key in written
    assert written["test_log_likelihood"] == pytest.approx(
        metrics["test_log_likelihood"]
    )
    for name in (
        "particles.png",
        "learning_curves.png",
        "moments.png",
        "filters.png",
        "trace.png",
        "rank.png",
        "chain_summary.csv",
        "diagnostics.nc",
    ):
        assert (tmp_path / name).exists()
    assert -1.0 <= written["covariance_pearson"] <= 1.0
    # Even 3 epochs of a 64-4 RBM beat the independent-pixels model on test images.
    assert written["test_log_likelihood"] > written["independent_test_log_likelihood"]


MNIST_FOLDER = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


@pytest.mark.skipif(not MNIST_FOLDER.exists(), reason="MNIST files not found")
def test_rbm_mnist_example_small(tmp_path, monkeypatch):
    metrics = run_example(
        "rbm_mnist.py",
        [
            "--data",
            str(MNIST_FOLDER),
            "--train-size",
            "500",
            "--hidden",
            "8",
            "--epochs",
            "2",
            "--chains",
            "20",
            "--ais-runs",
            "10",
            "--ais-betas",
            "50",
            "--burn-in",
            "20",
            "--output",
            str(tmp_path),
            "--no-progress",
        ],
        monkeypatch,
    )
    written = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "ais_test_log_likelihood",
        "ais_standard_error",
        "reverse_ais_test_log_likelihood",
        "num_hidden",
        "train_size",
        "test_size",
    ):
        assert key in written
    assert written["train_size"] == 500
    assert written["test_size"] == 9500
    assert written["ais_test_log_likelihood"] == pytest.approx(
        metrics["ais_test_log_likelihood"]
    )
    for name in ("particles.png", "filters.png", "learning_curves.png"):
        assert (tmp_path / name).exists()
