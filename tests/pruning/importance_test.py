import numpy as np

from tf_aat.pruning import _importance


def test_geometric_median_equals_direct_pairwise_distance_sum():
    kernel = np.random.default_rng(0).normal(size=(3, 3, 5, 7))
    filters = [kernel[..., i].reshape(-1) for i in range(7)]
    direct = [sum(np.linalg.norm(a - b) for b in filters) for a in filters]
    # float32 distances (the weights' precision), float64 sums.
    np.testing.assert_allclose(_importance.geometric_median_scores(kernel), direct, rtol=1e-5)


def test_float32_scoring_prunes_the_same_filters_as_float64():
    """Near-duplicate filters (small distances, where a.b cancellation bites)
    still rank as in an exact float64 computation."""
    rng = np.random.default_rng(3)
    base = rng.normal(0.0, 0.05, size=(3 * 3 * 64, 32))
    near_copies = base[:, :16] + rng.normal(0.0, 1e-4, size=(3 * 3 * 64, 16))
    filters = np.concatenate([base, near_copies, rng.normal(0.0, 0.05, (576, 80))], axis=1).T
    exact = np.array([np.linalg.norm(filters - f, axis=1).sum() for f in filters])
    scores = _importance.geometric_median_scores(filters.T.reshape(3, 3, 64, 128))
    np.testing.assert_allclose(scores, exact, rtol=1e-5)
    for k in (16, 32, 64):
        assert set(np.argsort(scores)[:k]) == set(np.argsort(exact)[:k])


def test_filter_at_the_geometric_median_scores_lowest():
    rng = np.random.default_rng(1)
    outer = rng.normal(size=(4, 6)) * 5.0
    center = outer.mean(axis=0, keepdims=True)
    kernel = np.concatenate([outer, center]).T.reshape(1, 1, 6, 5)
    assert int(np.argmin(_importance.geometric_median_scores(kernel))) == 4


def test_norm_scores():
    kernel = np.random.default_rng(2).normal(size=(2, 2, 3, 4))
    flat = kernel.reshape(-1, 4)
    np.testing.assert_allclose(_importance.l1_scores(kernel), np.abs(flat).sum(0))
    np.testing.assert_allclose(_importance.l2_scores(kernel), np.sqrt((flat**2).sum(0)))
