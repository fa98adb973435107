import numpy as np
import pytest

from foundry.mimo.real_valued import (
    complex_matrix,
    complex_vector,
    real_matrix,
    real_to_wl,
    real_vector,
    user_rows,
    wl_to_real,
)


def crandn(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def test_real_matrix_acts_like_the_complex_product():
    rng = np.random.default_rng(0)
    A, B, x = crandn(rng, 3, 4, 5), crandn(rng, 3, 5, 2), crandn(rng, 3, 5)
    np.testing.assert_allclose(real_matrix(A) @ real_matrix(B), real_matrix(A @ B), atol=1e-12)
    np.testing.assert_allclose(
        real_matrix(A) @ real_vector(x)[..., None], real_vector(A @ x[..., None], axis=-2)
    )
    np.testing.assert_allclose(real_matrix(A.conj().swapaxes(-1, -2)), real_matrix(A).swapaxes(-1, -2))


def test_wl_real_form_applies_p1_s_plus_p2_conj_s():
    rng = np.random.default_rng(1)
    P1, P2, s = crandn(rng, 2, 6, 3), crandn(rng, 2, 6, 3), crandn(rng, 2, 3)
    x = (P1 @ s[..., None] + P2 @ s.conj()[..., None])[..., 0]
    np.testing.assert_allclose(wl_to_real(P1, P2) @ real_vector(s)[..., None], real_vector(x)[..., None])


def test_round_trips_are_exact():
    rng = np.random.default_rng(2)
    P1, P2 = crandn(rng, 4, 5, 3), crandn(rng, 4, 5, 3)
    Q1, Q2 = real_to_wl(wl_to_real(P1, P2))
    np.testing.assert_allclose(Q1, P1, atol=1e-15)
    np.testing.assert_allclose(Q2, P2, atol=1e-15)
    Pbar = rng.standard_normal((4, 10, 6))  # every real matrix is some WL map
    np.testing.assert_allclose(wl_to_real(*real_to_wl(Pbar)), Pbar, atol=1e-15)
    np.testing.assert_array_equal(complex_matrix(real_matrix(P1)), P1)
    np.testing.assert_array_equal(complex_vector(real_vector(P1, axis=1), axis=1), P1)
    _, zero = real_to_wl(real_matrix(P1))  # a linear map has no conjugate part
    np.testing.assert_allclose(zero, 0, atol=1e-15)


def test_user_rows_layout():
    np.testing.assert_array_equal(user_rows(3, 2, real=False), [[0, 1], [2, 3], [4, 5]])
    np.testing.assert_array_equal(user_rows(2, 2, real=True), [[0, 1, 4, 5], [2, 3, 6, 7]])


def test_odd_real_shapes_are_rejected():
    with pytest.raises(ValueError, match="even number of rows"):
        real_to_wl(np.zeros((3, 4)))
