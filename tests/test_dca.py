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
from numpyro_ebm.estimators import moments
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


def test_frequency_moments_match_sample_moments():
    """Frequencies of weighted rows and the moments of those rows agree."""
    rng = np.random.default_rng(2)
    sequences = rng.integers(0, 3, (50, 4))
    weights = rng.uniform(0.2, 2.0, 50)
    stats = moments(Potts(4, 3), sequences, weights)
    from_frequencies = dca.frequency_moments(*dca.frequencies(sequences, 3, weights))
    for name in ("mean", "second_moment", "covariance", "element", "state"):
        np.testing.assert_allclose(
            getattr(from_frequencies, name), getattr(stats, name), atol=1e-6
        )


def test_pseudocount_mixes_in_uniform_frequencies():
    sequences = np.array([[0, 1, 2], [0, 0, 2], [1, 1, 2]])
    plain = dca.frequencies(sequences, 3)
    single, pair = dca.frequencies(sequences, 3, pseudocount=0.3)
    np.testing.assert_allclose(single, 0.7 * plain[0] + 0.1, atol=1e-6)
    np.testing.assert_allclose(pair[0, :, 1, :], 0.7 * plain[1][0, :, 1, :] + 0.3 / 9)
    np.testing.assert_allclose(pair[0, :, 0, :], np.diag(single[0]), atol=1e-6)
    with pytest.raises(ValueError, match="pseudocount"):
        dca.frequencies(sequences, 3, pseudocount=1.0)


def test_potts_mean_energy_matches_rows():
    """⟨E⟩ from the frequencies equals the weighted mean energy, value and gradient."""
    model, params = random_potts(jax.random.key(4))
    rng = np.random.default_rng(3)
    sequences = rng.integers(0, 3, (30, 4))
    weights = jnp.asarray(rng.uniform(0.2, 2.0, 30))
    single, pair = dca.frequencies(sequences, 3, np.asarray(weights))

    def by_rows(p):
        energies = model.energy(p, {"x": jnp.asarray(sequences)})
        return jnp.sum(weights * energies) / jnp.sum(weights)

    def by_frequencies(p):
        return model.mean_energy(p, single, pair)

    assert float(by_frequencies(params)) == pytest.approx(float(by_rows(params)), 1e-5)
    for name in ("fields", "couplings"):
        np.testing.assert_allclose(
            jax.grad(by_frequencies)(params)[name],
            jax.grad(by_rows)(params)[name],
            atol=1e-6,
        )


def test_profile_start_matches_single_site_frequencies():
    """A new fit starts at h = log f and draws its chains from that profile."""
    rng = np.random.default_rng(5)
    sequences = rng.integers(0, 4, (200, 5))
    learner = dca.dca_learner(Potts(5, 4), num_chains=4000, learning_rate=1e-9)
    result = dca.fit_dca(
        jax.random.key(0), sequences, 4, learner=learner, max_updates=1, check_every=1
    )
    single, _ = dca.frequencies(sequences, 4, pseudocount=1 / 200)
    np.testing.assert_allclose(result.state.params["fields"], np.log(single), atol=1e-6)
    # After one sweep the chains still sample the profile model exactly (J = 0).
    # Each frequency is a mean of 4000 independent draws, SE ≤ 0.0079; 5
    # standard errors over the 20 entries fail with probability below 1e-5.
    counts = jax.nn.one_hot(result.state.chains.position["x"], 4).mean(0)
    np.testing.assert_allclose(counts, single, atol=5 * 0.0079)


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


def test_training_moves_gauged_fields():
    """Training moves the fields, also in the zero-sum gauge, and fits f_i exactly.

    Couplings that grow during training shift the single-site marginals, so
    the fields must move away from the profile start to keep f_i. In the
    zero-sum gauge, the coupling terms moved into the fields must follow too.
    The marginals of the trained model are computed by enumerating all 3^4
    states. The fit ends with a noisy gradient step: with 2,000 chains a
    frequency has a standard error of at most 0.011, and η = 0.2 moves a
    field by at most 0.2 × 0.011 per step, so marginals within 0.04 of the
    data are a loose bound.
    """
    model, params = random_potts(jax.random.key(6), scale=1.0)
    states = jnp.array(list(itertools.product(range(3), repeat=4)))
    probs = np.asarray(jax.nn.softmax(-model.energy(params, {"x": states})))
    rows = np.random.default_rng(7).choice(len(states), 3000, p=probs / probs.sum())
    sequences = np.asarray(states)[rows]
    learner = dca.dca_learner(Potts(4, 3), num_chains=2000, learning_rate=0.2)
    result = dca.fit_dca(
        jax.random.key(1),
        sequences,
        3,
        pseudocount=0.0,
        learner=learner,
        max_updates=300,
        target_pearson=1.0,
        check_every=50,
    )
    single, _ = dca.frequencies(sequences, 3)
    fitted = result.state.params
    energies = result.model.energy(fitted, {"x": states})
    marginals = jnp.einsum(
        "s,sia->ia", jax.nn.softmax(-energies), jax.nn.one_hot(states, 3)
    )
    np.testing.assert_allclose(marginals, single, atol=0.04)

    start = dca.profile_params(single)
    assert float(jnp.abs(fitted["fields"] - start["fields"]).max()) > 0.2
    gauged_start, _ = dca.zero_sum_gauge(start["fields"], jnp.zeros((4, 3, 4, 3)))
    gauged_fit, _ = dca.zero_sum_gauge(
        result.model.constrain(fitted)["fields"], result.model.coupling_matrix(fitted)
    )
    assert float(jnp.abs(gauged_fit - gauged_start).max()) > 0.2


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
            "--fresh-samples", "30", "--fresh-sweeps", "3",
            "--output", str(tmp_path)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", ["dca_rna.py", *argv])
    metrics = runpy.run_path(str(EXAMPLES / "dca_rna.py"))["main"](argv)
    written = json.loads((tmp_path / "metrics.json").read_text())
    for key in (
        "pearson",
        "slope",
        "updates",
        "seconds",
        "num_chains",
        "fresh_pearson",
        "fresh_slope",
    ):
        assert key in written  # fmt: skip
    assert written["updates"] == 4
    assert written["pearson"] == pytest.approx(metrics["pearson"])
    assert (tmp_path / "contact_map.png").exists()
    assert (tmp_path / "correlations.png").exists()
    with np.load(tmp_path / "params.npz") as saved:
        assert saved["couplings"].shape == (136, 5, 136, 5)


@pytest.mark.skipif(not MSA.exists(), reason="alignment files not found")
def test_protein_example_small(tmp_path):
    argv = ["--max-updates", "2", "--chains", "10", "--sweeps", "1", "--check-every", "2",
            "--fresh-samples", "20", "--fresh-sweeps", "2",
            "--output", str(tmp_path)]  # fmt: skip
    metrics = runpy.run_path(str(EXAMPLES / "dca_protein.py"))["main"](argv)
    assert metrics["updates"] == 2
    assert metrics["effective_sequences"] == pytest.approx(4363.86, abs=0.01)
    with np.load(tmp_path / "params.npz") as saved:
        assert saved["couplings"].shape == (53, 21, 53, 21)


def test_benchmark_reads_adabmdca_log(tmp_path):
    """The benchmark finds the first update of each Pearson level in the log table."""
    benchmark = runpy.run_path(
        str(EXAMPLES.parent / "benchmarks" / "dca_rf00379.py"), run_name="benchmark"
    )
    log = tmp_path / "adabmDCA.log"
    log.write_text(
        "[OPTIMIZATION]\nchains: 2000\n\n"
        "Step  Stage         Pearson  Slope  Elapsed_s\n"
        "1     optimization  0.10     0.05   0.7\n"
        "2     optimization  0.96     0.90   1.4\n"
        "3     optimization  0.97     0.95   2.1\n"
        "[END]\n"
    )
    rows = benchmark["parse_adabmdca_log"](log)
    assert [row["Step"] for row in rows] == ["1", "2", "3"]
    history = [(int(r["Step"]), float(r["Elapsed_s"]), float(r["Pearson"]), 0.0)
               for r in rows]  # fmt: skip
    assert benchmark["first_reaching"](history, 0.95) == (2, 1.4)
    assert benchmark["first_reaching"](history, 0.99) is None


def test_fit_rejects_finished_state():
    sequences = np.random.default_rng(0).integers(0, 3, (40, 4))
    learner = dca.dca_learner(Potts(4, 3), num_chains=8)
    result = dca.fit_dca(
        jax.random.key(0), sequences, 3, learner=learner, max_updates=4, check_every=2
    )
    with pytest.raises(ValueError, match="raise `max_updates`"):
        dca.fit_dca(
            jax.random.key(0),
            sequences,
            3,
            learner=learner,
            max_updates=4,
            init_state=result.state,
            target_pearson=1.0,
        )


def test_fit_rejects_bad_weights():
    sequences = np.random.default_rng(0).integers(0, 3, (40, 4))
    with pytest.raises(ValueError, match="M_eff"):
        dca.fit_dca(jax.random.key(0), sequences, 3, weights=np.full(40, 1 / 40))
    with pytest.raises(ValueError, match="finite and non-negative"):
        dca.frequencies(sequences, 3, weights=-np.ones(40))


def test_analysis_edge_cases():
    scores = dca.contact_scores(jnp.zeros((5, 3, 5, 3)))
    assert np.all(np.asarray(scores) == 0.0)
    with pytest.raises(ValueError, match="count"):
        dca.top_contacts(scores, 0)
    model = Potts(4, 3)
    with pytest.raises(ValueError, match="`single` must have shape"):
        model.mean_energy(model.init_params(), jnp.zeros(3), jnp.zeros((4, 3, 4, 3)))


def test_cli_finished_run_and_bad_input(tmp_path, capsys):
    alignment = tmp_path / "toy.fasta"
    write_toy_alignment(alignment)
    folder = tmp_path / "run"
    assert cli.main(train_argv(alignment, folder, 2)) == 0
    assert cli.main(train_argv(alignment, folder, 2)) == 0
    assert "raise --max-updates to continue" in capsys.readouterr().out
    empty = tmp_path / "empty.fasta"
    empty.write_text("")
    assert cli.main(["dca", "train", str(empty), "--output", str(tmp_path / "x")]) == 2
    assert "numpyro-ebm: error:" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["dca", "train", str(alignment), "--chains", "0"])


def test_energies_reject_other_length():
    model, params = random_potts(jax.random.key(1))
    with pytest.raises(ValueError, match="5 positions but the model has 4 sites"):
        dca.sequence_energies(model, params, np.zeros((2, 5), int))
    with pytest.raises(ValueError, match="one sequence"):
        dca.single_mutant_energies(model, params, np.zeros((1, 4), int))
