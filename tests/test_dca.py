import itertools
import json
import runpy
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from numpyro_ebm import cli, dca
from numpyro_ebm.data.fasta import write_fasta
from numpyro_ebm.models import Potts

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
MSA = Path(__file__).resolve().parents[2] / "shared" / "data" / "msa"


def random_potts(key, num_sites=4, num_states=3, scale=0.7):
    key_h, key_j = jax.random.split(key)
    fields = scale * jax.random.normal(key_h, (num_sites, num_states))
    raw = scale * jax.random.normal(key_j, (num_sites, num_states) * 2)
    model = Potts(num_sites, num_states, fields=fields, couplings=raw)
    return model, model.init_params()


def test_zero_sum_gauge_keeps_distribution():
    model, params = random_potts(jax.random.key(0))
    fields = model.constrain(params)["fields"]
    couplings = model.coupling_matrix(params)
    gauged_fields, gauged = dca.zero_sum_gauge(fields, couplings)
    states = jnp.array(list(itertools.product(range(3), repeat=4)))
    before = model.energy(params, {"x": states})
    after = model.energy({"fields": gauged_fields, "couplings": gauged}, {"x": states})
    difference = np.asarray(after - before)
    np.testing.assert_allclose(difference, difference[0], atol=1e-5)
    np.testing.assert_allclose(gauged.sum(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(gauged.sum(axis=3), 0.0, atol=1e-5)
    np.testing.assert_allclose(gauged_fields.sum(axis=1), 0.0, atol=1e-5)


def test_contact_scores_find_coupled_pair():
    couplings = jnp.zeros((6, 3, 6, 3))
    block = jnp.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    couplings = couplings.at[1, :, 4, :].set(block).at[4, :, 1, :].set(block.T)
    scores = dca.contact_scores(couplings)
    assert np.allclose(scores, scores.T)
    assert dca.top_contacts(scores, 1, min_separation=1)[0][:2] == (1, 4)


def test_single_mutants_match_energies():
    model, params = random_potts(jax.random.key(1))
    reference = np.array([0, 2, 1, 1])
    delta = np.asarray(dca.single_mutant_energies(model, params, reference))
    base = float(dca.sequence_energies(model, params, reference[None])[0])
    for i, a in itertools.product(range(4), range(3)):
        mutant = reference.copy()
        mutant[i] = a
        energy = float(dca.sequence_energies(model, params, mutant[None])[0])
        assert delta[i, a] == pytest.approx(energy - base, abs=1e-5)


def test_pseudocount_moments():
    sequences = np.array([[0, 1, 2], [0, 0, 2], [1, 1, 2]])
    rows, weights = dca.training_rows(jax.random.key(0), sequences, 3, pseudocount=0.3)
    single, pair = dca.frequencies(sequences, 3, pseudocount=0.3)
    stats = dca.moments(Potts(3, 3), rows, weights)
    np.testing.assert_allclose(stats.mean.reshape(3, 3), single, atol=1e-6)
    # Pair frequencies of the balanced rows carry an error of order λ/(q√K) ≈ 0.008.
    off_diagonal = ~np.eye(3, dtype=bool)
    fitted = np.asarray(stats.second_moment.reshape(3, 3, 3, 3)).transpose(0, 2, 1, 3)
    expected = np.asarray(pair).transpose(0, 2, 1, 3)
    np.testing.assert_allclose(fitted[off_diagonal], expected[off_diagonal], atol=0.02)
    np.testing.assert_allclose(
        np.asarray(pair)[0, :, 0, :], np.diag(single[0]), atol=1e-6
    )


def test_fit_reaches_target_small():
    # Two strongly coupled sites among four: a short fit reproduces the correlations.
    rng = np.random.default_rng(0)
    first = rng.integers(0, 2, 400)
    sequences = np.stack(
        [first, first, rng.integers(0, 2, 400), rng.integers(0, 2, 400)], 1
    )
    learner = dca.dca_learner(Potts(4, 2), num_chains=400, learning_rate=0.5)
    result = dca.fit_dca(
        jax.random.key(0),
        sequences,
        2,
        learner=learner,
        max_updates=200,
        target_pearson=0.95,
        check_every=10,
    )
    assert result.converged
    assert result.monitor.pearson[-1] >= 0.95


def test_fit_rejects_out_of_range_states():
    with pytest.raises(ValueError, match="outside"):
        dca.fit_dca(jax.random.key(0), np.array([[0, 3]]), 2)


def write_toy_alignment(path):
    rng = np.random.default_rng(1)
    first = rng.integers(1, 5, 60)
    states = np.stack([first, first, *rng.integers(0, 5, (4, 60))], 1)
    letters = np.array(list("-ACGU"))
    write_fasta(
        path, [f"s{n}" for n in range(60)], ["".join(r) for r in letters[states]]
    )


def train_argv(alignment, output, updates):
    return [
        "dca", "train", str(alignment), "--output", str(output), "--alphabet", "rna",
        "--chains", "16", "--sweeps", "2", "--lr", "0.1", "--max-updates", str(updates),
        "--check-every", "2", "--target-pearson", "1.0",
    ]  # fmt: skip


def test_cli_resume_reproduces_state(tmp_path, capsys):
    alignment = tmp_path / "toy.fasta"
    write_toy_alignment(alignment)
    assert cli.main(train_argv(alignment, tmp_path / "once", 6)) == 0
    assert cli.main(train_argv(alignment, tmp_path / "twice", 2)) == 0
    assert cli.main(train_argv(alignment, tmp_path / "twice", 6)) == 0
    assert "resuming from update 2" in capsys.readouterr().out
    with np.load(tmp_path / "once" / cli.STATE_FILE) as once:
        with np.load(tmp_path / "twice" / cli.STATE_FILE) as twice:
            assert once.files == twice.files
            for name in once.files:
                np.testing.assert_allclose(
                    once[name], twice[name], rtol=1e-6, err_msg=name
                )
    history = np.loadtxt(tmp_path / "twice" / cli.HISTORY_FILE, skiprows=1)
    assert history[:, 0].tolist() == [2, 4, 6]


def test_cli_sample_contacts_energies(tmp_path):
    alignment = tmp_path / "toy.fasta"
    write_toy_alignment(alignment)
    folder = tmp_path / "run"
    assert cli.main(train_argv(alignment, folder, 4)) == 0
    assert cli.main(["dca", "sample", str(folder), "--num", "5", "--sweeps", "3"]) == 0
    assert (folder / "samples.fasta").read_text().count(">") == 5
    assert cli.main(["dca", "contacts", str(folder), "--top", "3"]) == 0
    assert np.load(folder / "contact_scores.npy").shape == (6, 6)
    assert cli.main(["dca", "energies", str(folder), str(alignment), "--mutants"]) == 0
    assert len((folder / "energies.tsv").read_text().splitlines()) == 61
    assert np.loadtxt(folder / "single_mutants.txt").shape == (6, 5)


def test_cli_missing_folder(tmp_path):
    with pytest.raises(SystemExit, match="run `numpyro-ebm dca train"):
        cli.main(["dca", "contacts", str(tmp_path)])


@pytest.mark.skipif(not MSA.exists(), reason="alignment files not found")
def test_rna_example_small(tmp_path, monkeypatch):
    argv = ["--max-updates", "4", "--chains", "20", "--sweeps", "2", "--check-every", "2",
            "--output", str(tmp_path)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["dca_rna.py", *argv])
    metrics = runpy.run_path(str(EXAMPLES / "dca_rna.py"))["main"](argv)
    written = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("pearson", "slope", "updates", "seconds", "num_chains"):
        assert key in written
    assert written["updates"] == 4
    assert written["pearson"] == pytest.approx(metrics["pearson"])
    assert (tmp_path / "contact_map.png").exists()
    assert (tmp_path / "correlations.png").exists()
