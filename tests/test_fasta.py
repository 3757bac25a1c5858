from pathlib import Path

import numpy as np
import pytest

from numpyro_ebm.data.fasta import (
    encode_sequences,
    parse_fasta,
    read_alignment,
    sequence_weights,
)

MSA = Path(__file__).resolve().parents[2] / "shared" / "data" / "msa"
needs_msa = pytest.mark.skipif(not MSA.exists(), reason="alignment files not found")


@needs_msa
def test_pf00014_raw_weights_file():
    alignment = read_alignment(MSA / "PF00014_raw.fasta", "protein", unknown="gap")
    assert alignment.sequences.shape == (4914, 53)
    weights = sequence_weights(alignment.sequences)
    reference = np.loadtxt(MSA / "PF00014_weights.txt")
    # The file stores six significant digits.
    np.testing.assert_allclose(weights, reference, rtol=1e-5)
    assert weights.sum() == pytest.approx(2051.175, abs=5e-4)


@needs_msa
@pytest.mark.parametrize(
    ("name", "alphabet", "expected"),
    [("PF00014_mgap6.fasta", "protein", 4363.86), ("RF00379.fasta", "rna", 1446.30)],
)
def test_effective_number(name, alphabet, expected):
    alignment = read_alignment(MSA / name, alphabet)
    assert sequence_weights(alignment.sequences).sum() == pytest.approx(
        expected, abs=5e-3
    )


@needs_msa
def test_raw_rejects_unknown_letter():
    with pytest.raises(ValueError, match="not in the alphabet") as error:
        read_alignment(MSA / "PF00014_raw.fasta", "protein")
    assert "position" in str(error.value)


def test_unknown_letter_policies():
    with pytest.raises(ValueError, match=r"'s2'.*'X' at aligned position 3"):
        encode_sequences(["ACG", "ACX"], "ACGU-", headers=["s1", "s2"])
    states = encode_sequences(["AXC"], "protein", unknown="gap")
    assert states.tolist() == [[1, 0, 2]]


def test_inserts_dropped_or_kept():
    sequences = ["A.c-G", "Ag.UG"]
    dropped = encode_sequences(sequences, "rna")
    assert dropped.tolist() == [[1, 0, 3], [1, 4, 3]]
    kept = encode_sequences(sequences, "rna", drop_inserts=False)
    assert kept.tolist() == [[1, 0, 2, 0, 3], [1, 3, 0, 4, 3]]


def test_unequal_lengths_rejected():
    with pytest.raises(ValueError, match="aligned positions"):
        encode_sequences(["ACG", "AC"], "rna")


def test_text_before_header_rejected():
    with pytest.raises(ValueError, match="before the first"):
        parse_fasta("ACGU\n>a\nACGU\n")


def test_empty_file_rejected(tmp_path):
    path = tmp_path / "empty.fasta"
    path.write_text("\n")
    with pytest.raises(ValueError, match="no FASTA records"):
        read_alignment(path, "rna")


def test_bad_alphabet_rejected():
    with pytest.raises(ValueError, match="distinct letters"):
        encode_sequences(["AA"], "AAB")


def test_weights_threshold_inclusive():
    # L = 5 and θ = 0.8: 4 matching positions is identity exactly 0.8, a neighbour.
    states = np.array([[0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [1, 1, 0, 0, 0]])
    assert sequence_weights(states, 0.8).tolist() == [0.5, 0.5, 1.0]
    assert sequence_weights(states, 0.81).tolist() == [1.0, 1.0, 1.0]


def test_weights_blocks_agree():
    rng = np.random.default_rng(0)
    states = rng.integers(0, 2, size=(37, 6))
    whole = sequence_weights(states, 0.6, block_size=100)
    blocked = sequence_weights(states, 0.6, block_size=5)
    np.testing.assert_array_equal(whole, blocked)


def test_weights_invalid_threshold():
    with pytest.raises(ValueError, match="threshold"):
        sequence_weights(np.zeros((2, 3), int), 0.0)
