"""Mutation fuzzing of the reading side in the suite: any exception other than the product's own fails.

Fixed seed (derandomized hypothesis) and a bounded number of examples, so the run is the same every
time and takes well under a minute; ``Testing/fuzz_reader.py`` runs the same mutations for longer.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import fuzz_mutations as fm
from DicomRegSaveLib.reg.reader import read_dataset
from DicomRegSaveLib.validation.iod_rules import check_dataset

MUTATION = st.tuples(st.sampled_from(fm.OPERATORS), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return fm.seed_files(tmp_path_factory.mktemp("fuzz_seeds"))


@settings(
    max_examples=600,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(seed_index=st.integers(0, 2), mutations=st.lists(MUTATION, min_size=1, max_size=5))
def test_mutated_files_fail_only_with_product_errors(seeds, tmp_path, seed_index, mutations):
    files, images = seeds
    seed = files[seed_index % len(files)]
    path = tmp_path / "mutated.dcm"
    path.write_bytes(fm.mutate(seed, mutations))
    outcomes = fm.exercise(path, images)
    assert set(outcomes) == {"read", "inspect", "validate"}


def test_unmutated_seeds_read_and_validate(seeds, tmp_path):
    files, images = seeds
    for number, data in enumerate(files):
        path = tmp_path / f"seed{number}.dcm"
        path.write_bytes(data)
        assert fm.exercise(path, images) == {"inspect": "ok", "read": "ok", "validate": "ok"}
        report = check_dataset(read_dataset(path))
        assert report.ok, report.text()
