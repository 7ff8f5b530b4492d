import numpy as np
import pytest

from interp.config import DataConfig
from interp.data import ACCURACY_NAMES, accuracies, all_pairs, apply_op, make_dataset


def test_ops_by_hand():
    p = 7
    assert apply_op("add", 5, 4, p) == 2
    assert apply_op("sub", 2, 5, p) == 4
    assert apply_op("mul", 3, 5, p) == 1
    assert apply_op("sq_sum", 3, 5, p) == (9 + 25) % 7
    assert apply_op("div", 3, 5, p) == 2  # 2 * 5 = 10 = 3 mod 7
    m, n = all_pairs("div", p).T
    np.testing.assert_array_equal(apply_op("mul", apply_op("div", m, n, p), n, p), m)


def test_div_domain_excludes_zero_divisor():
    pairs = all_pairs("div", 5)
    assert pairs.shape == (20, 2) and not np.any(pairs[:, 1] == 0)
    with pytest.raises(ValueError, match="nonzero"):
        apply_op("div", 1, 0, 5)


def test_split_is_deterministic_and_a_partition():
    cfg = DataConfig(p=11, train_frac=0.4, corrupt=0.2, split_seed=3, corrupt_seed=4)
    a, b = make_dataset(cfg), make_dataset(cfg)
    for k in ("train_idx", "test_idx", "train_labels", "corrupted"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert len(a.train_idx) == int(0.4 * 121)
    np.testing.assert_array_equal(np.sort(np.concatenate([a.train_idx, a.test_idx])),
                                  np.arange(121))
    c = make_dataset(DataConfig(p=11, train_frac=0.4, corrupt=0.2, split_seed=5))
    assert not np.array_equal(a.train_idx, c.train_idx)


def test_corruption_bookkeeping():
    ds = make_dataset(DataConfig(p=13, train_frac=0.5, corrupt=0.35))
    n_train = len(ds.train_idx)
    assert ds.corrupted.sum() == int(0.35 * n_train)
    true = ds.true_labels[ds.train_idx]
    # every corrupted label is wrong, every clean label is right
    assert np.all(ds.train_labels[ds.corrupted] != true[ds.corrupted])
    np.testing.assert_array_equal(ds.train_labels[~ds.corrupted], true[~ds.corrupted])
    np.testing.assert_array_equal(true, apply_op("add", *ds.pairs[ds.train_idx].T, 13))


def test_uniform_corruption_leaves_about_one_in_p_correct():
    ds = make_dataset(DataConfig(p=11, train_frac=0.9, corrupt=0.9, corrupt_mode="uniform"))
    true = ds.true_labels[ds.train_idx]
    accidental = np.mean(ds.train_labels[ds.corrupted] == true[ds.corrupted])
    assert 0.03 < accidental < 0.2  # 1/11 expected over 97 draws; about +-3 sigma
    different = make_dataset(DataConfig(p=11, train_frac=0.9, corrupt=0.9))
    assert not np.any(different.train_labels[different.corrupted]
                      == different.true_labels[different.train_idx][different.corrupted])


def test_accuracies_known_answers():
    ds = make_dataset(DataConfig(p=11, corrupt=0.3))
    # predicting the training labels as given: memorizes everything, test perfect
    pred = np.concatenate([ds.train_labels, ds.true_labels[ds.test_idx]])
    acc = accuracies(pred, ds)
    assert list(acc) == list(ACCURACY_NAMES)
    assert acc["train"] == acc["train_clean"] == acc["train_corrupted"] == acc["test"] == 1
    assert acc["train_corrupted_true"] == 0
    n_bad = ds.corrupted.sum()
    np.testing.assert_allclose(acc["all_true"], 1 - n_bad / 121)
    # true labels everywhere: full inversion, train accuracy = 1 - xi
    truth = ds.true_labels[ds.eval_idx]
    acc = accuracies(np.stack([truth, pred]), ds)  # leading axis broadcasts
    np.testing.assert_allclose(acc["train"], [1 - n_bad / len(ds.train_idx), 1])
    np.testing.assert_allclose(acc["train_corrupted"], [0, 1])


def test_no_corruption_gives_nan_for_empty_subsets():
    ds = make_dataset(DataConfig(p=7, corrupt=0.0))
    acc = accuracies(ds.true_labels[ds.eval_idx], ds)
    assert np.isnan(acc["train_corrupted"]) and acc["train"] == 1.0
    with pytest.raises(ValueError, match="last axis 49"):
        accuracies(np.zeros(48), ds)


# ----------------------------------------------------------------------------- Power et al.'s ops
def power_reference(op: str, m: int, n: int, p: int) -> int:
    """Each operation in plain Python integers (a slow reference, formula by formula)."""
    inv = pow(n, -1, p) if n % p else None
    return {"m2_mn_n2": m**2 + m * n + n**2, "m2_mn_n2_m": m**2 + m * n + n**2 + m,
            "m3_mn": m**3 + m * n, "m3_mn2_n": m**3 + m * n**2 + n,
            "div_odd_sub": (m * inv if n % 2 == 1 else m - n)}[op] % p


NEW_OPS = ("m2_mn_n2", "m2_mn_n2_m", "m3_mn", "m3_mn2_n", "div_odd_sub")


@pytest.mark.parametrize("op", NEW_OPS)
def test_power_operations_true_label_tables(op):
    p = 7
    ds = make_dataset(DataConfig(p=p, op=op, train_frac=0.5, corrupt=0.3))
    assert len(ds.pairs) == p * p  # every pair is defined (an odd n is never 0)
    table = [power_reference(op, int(m), int(n), p) for m, n in ds.pairs]
    np.testing.assert_array_equal(ds.true_labels, table)
    true = ds.true_labels[ds.train_idx]
    assert ds.corrupted.sum() == int(0.3 * len(ds.train_idx))
    assert np.all(ds.train_labels[ds.corrupted] != true[ds.corrupted])
    pred = ds.true_labels[ds.eval_idx]  # the true operation: inversion, test perfect
    acc = accuracies(pred, ds)
    assert acc["test"] == acc["train_clean"] == acc["train_corrupted_true"] == 1.0
    assert acc["train_corrupted"] == 0.0


def test_power_operations_by_hand_and_large_p():
    # 3/5 mod 7 = 3 * 3 = 2 (5 is odd); 3 - 4 = -1 = 6 (4 is even)
    assert apply_op("div_odd_sub", np.array([3, 3]), np.array([5, 4]), 7).tolist() == [2, 6]
    assert int(apply_op("m3_mn2_n", 2, 3, 7)) == (8 + 18 + 3) % 7
    big = 2**31 - 1  # products are reduced as they are formed: no int64 overflow
    m, n = big - 1, big - 2  # -1 and -2 mod p
    assert int(apply_op("m3_mn2_n", m, n, big)) == (-1 - 4 - 2) % big
    assert int(apply_op("m2_mn_n2_m", m, n, big)) == (1 + 2 + 4 - 1) % big
    with pytest.raises(ValueError, match="p must be a prime for op 'div_odd_sub'"):
        DataConfig(p=9, op="div_odd_sub")
