import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name, argv, monkeypatch):
    monkeypatch.setattr(sys, "argv", [name, *argv])
    module = runpy.run_path(str(EXAMPLES / name))
    return module["main"](argv)


def test_gaussian_mle_example_small(tmp_path, monkeypatch):
    argv = [
        "--dim",
        "2",
        "--samples",
        "100",
        "--chains",
        "64",
        "--epochs",
        "2",
        "--batch-size",
        "50",
        "--kernel",
        "mala",
        "--output",
        str(tmp_path),
        "--no-progress",
    ]
    metrics = run_example("gaussian_mle.py", argv, monkeypatch)
    written = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("mean_relative_error", "covariance_relative_error"):
        assert written[key] == pytest.approx(metrics[key])
        assert np.isfinite(written[key])
        assert written[key] >= 0.0
    assert len(written["learned_mean"]) == 2
    assert (tmp_path / "fit.png").exists()
    assert (tmp_path / "learning_curves.png").exists()


def test_density_2d_example_small(tmp_path, monkeypatch):
    argv = [
        "--samples",
        "200",
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--chains",
        "32",
        "--sweeps",
        "2",
        "--batch-size",
        "64",
        "--output",
        str(tmp_path),
        "--no-progress",
    ]
    metrics = run_example("density_2d.py", argv, monkeypatch)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["mode_coverage"] == pytest.approx(metrics["mode_coverage"])
    assert 0.0 <= written["mode_coverage"] <= 1.0
    assert len(written["particles_per_mode"]) == 8
    # The 200 training points are drawn from the ring itself.
    assert written["data_fraction_near_modes"] > 0.95
    assert (tmp_path / "density.png").exists()
    assert (tmp_path / "learning_curves.png").exists()


def test_density_2d_coverage_counts_modes():
    module = runpy.run_path(str(EXAMPLES / "density_2d.py"))
    centres = module["mode_centres"]()
    one_mode = module["coverage"](centres[[0] * 80])
    assert one_mode["mode_coverage"] == pytest.approx(1 / 8)
    assert one_mode["fraction_near_modes"] == 1.0
    every_mode = module["coverage"](centres.repeat(10, axis=0))
    assert every_mode["mode_coverage"] == 1.0
