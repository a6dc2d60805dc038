"""Assignment tests for Part 4, chapter 4: position beyond one dimension."""

import torch

from companion.positional import sinusoidal_encoding_2d
from companion.teaching import test


def _rotate(rotate_by_m1, half):
    try:
        out = torch.as_tensor(rotate_by_m1(half), dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError) as error:
        raise AssertionError(f"rotate_by_m1 failed on a 16-vector: {error}") from None
    assert out.shape == (16,), (
        f"rotate_by_m1 should return 16 numbers, got shape {tuple(out.shape)}"
    )
    return out


@test("ex-2d-shift")
def rotate_by_m1_moves_the_first_half_one_row_down(rotate_by_m1):
    grid = sinusoidal_encoding_2d(8, 8, 32, dtype=torch.float64)
    for row, column in [(2, 5), (6, 3), (0, 0)]:
        here, next_row = grid[row * 8 + column, :16], grid[(row + 1) * 8 + column, :16]
        got = _rotate(rotate_by_m1, here.clone())
        if row > 0:
            previous_row = grid[(row - 1) * 8 + column, :16]
            assert not torch.allclose(got, previous_row, atol=1e-5), (
                "rotate_by_m1 moves the patch one row up: it turns each pair by "
                "-omega_i, the rotation M_-1 (check the signs of the sines)"
            )
        assert torch.allclose(got, next_row, atol=1e-5), (
            f"rotate_by_m1 of the first half of patch ({row}, {column}) should be the "
            f"first half of patch ({row + 1}, {column}): each (sin, cos) pair "
            "(dimensions 2i, 2i + 1) turned by omega_i = 10000^(-2i/16)"
        )


@test("ex-2d-shift", hidden=True)
def rotate_by_m1_is_a_rotation_of_any_vector(rotate_by_m1):
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(2, 16, generator=generator, dtype=torch.float64)
    fx, fy = _rotate(rotate_by_m1, x.clone()), _rotate(rotate_by_m1, y.clone())
    combined = _rotate(rotate_by_m1, 2 * x - y)
    assert torch.allclose(combined, 2 * fx - fy, atol=1e-5), (
        "M_1 is a matrix: rotate_by_m1 should be linear in any vector, not only "
        "work on encodings"
    )
    assert torch.isclose(fx.norm(), x.norm(), atol=1e-5), (
        "M_1 is a rotation: it should preserve lengths"
    )
    for i in range(8):
        pair = slice(2 * i, 2 * i + 2)
        assert torch.isclose(fx[pair].norm(), x[pair].norm(), atol=1e-5), (
            f"M_1 turns every pair (dimensions {2 * i}, {2 * i + 1}) on its own, "
            "so each pair keeps its length"
        )


@test("ex-unique-2d")
def every_patch_of_a_32_by_32_grid_is_distinct(n_unique):
    encoding = sinusoidal_encoding_2d(32, 32, 64)
    expected = torch.unique(encoding, dim=0).shape[0]
    assert expected == 32 * 32  # the property the exercise checks
    try:
        count = int(n_unique)
    except (TypeError, ValueError, RuntimeError):
        raise AssertionError(f"n_unique should be a number, got {n_unique!r}") from None
    assert count == expected, (
        f"expected {expected} distinct encodings, one per patch, got {n_unique!r}: "
        "count the distinct rows of sinusoidal_encoding_2d(32, 32, 64) "
        "(torch.unique(..., dim=0))"
    )
