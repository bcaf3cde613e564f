import numpy as np
import pytest
from oracles import pad_rows_loop

from ray_job.encode.batching import length_order, pad_rows, padding_efficiency, token_budget_batches
from ray_job.read.keys import make_key, split_key


def test_keys_round_trip_and_order_by_file_then_position():
    assert split_key(make_key(3, 12345)) == (3, 12345)
    assert make_key(0, 10**9) < make_key(1, 0) < make_key(1, 1)
    with pytest.raises(ValueError):
        make_key(0, 1 << 40)
    with pytest.raises(ValueError):
        make_key(-1, 0)


def test_length_order_is_longest_first_and_stable():
    assert length_order(np.array([3, 5, 3, 9])).tolist() == [3, 1, 0, 2]


@pytest.mark.parametrize("budget, max_rows", [(64, 100), (1000, 4), (16384, 256), (7, 100)])
def test_token_budget_batches_cover_each_row_once_and_respect_the_budget(budget, max_rows):
    rng = np.random.default_rng(0)
    lengths = np.sort(rng.integers(1, 300, size=500))[::-1]
    batches = token_budget_batches(lengths, budget, max_rows)
    covered = np.concatenate([np.arange(len(lengths))[b] for b in batches])
    assert covered.tolist() == list(range(len(lengths)))
    for b in batches:
        rows = lengths[b]
        assert len(rows) <= max_rows
        assert len(rows) == 1 or len(rows) * rows[0] <= budget


def test_token_budget_batches_keep_padding_efficiency_high():
    rng = np.random.default_rng(1)
    lengths = np.sort(rng.integers(20, 256, size=2000))[::-1]
    batches = token_budget_batches(lengths, 16384, 256)
    computed = sum(len(lengths[b]) * lengths[b][0] for b in batches)
    assert padding_efficiency(int(lengths.sum()), int(computed)) >= 0.97


def test_pad_rows_right_pads_with_the_pad_id_and_masks():
    values = np.array([5, 6, 7, 8, 9, 10], dtype=np.int32)
    offsets = np.array([0, 3, 4, 6])
    ids, mask = pad_rows(values, offsets, np.array([2, 1]), pad_id=0)
    assert ids.tolist() == [[9, 10], [8, 0]]
    assert mask.tolist() == [[1, 1], [1, 0]]




@pytest.mark.parametrize("seed", range(5))
def test_pad_rows_matches_the_per_row_loop(seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0 if seed else 1, 300, size=400)       # seed 0: no empty rows
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    values = rng.integers(0, 30522, size=offsets[-1]).astype(np.int32)
    for rows in (length_order(lengths)[:256], rng.permutation(400)[:37], np.array([399]),
                 np.array([], dtype=np.int64)):
        want = pad_rows_loop(values, offsets, rows, pad_id=7)
        got = pad_rows(values, offsets, rows, pad_id=7)
        for w, g in zip(want, got, strict=True):
            assert g.dtype == np.int64 and g.shape == w.shape
            np.testing.assert_array_equal(g, w)


def test_pad_rows_writes_into_given_buffers_and_checks_their_shape():
    values = np.array([5, 6, 7, 8, 9, 10], dtype=np.int32)
    offsets = np.array([0, 3, 4, 6])
    flat = np.full(8, -1, dtype=np.int64)                 # e.g. a reused pinned buffer
    ids, mask = flat[:4].reshape(2, 2), flat[4:].reshape(2, 2)
    got = pad_rows(values, offsets, np.array([2, 1]), 0, out=(ids, mask))
    assert got[0] is ids and flat.tolist() == [9, 10, 8, 0, 1, 1, 1, 0]
    with pytest.raises(ValueError, match="shape"):
        pad_rows(values, offsets, np.array([0, 1]), 0, out=(ids, mask))
