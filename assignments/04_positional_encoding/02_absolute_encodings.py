"""Assignment tests for Part 4, chapter 2: absolute positional encodings."""

import math

import torch

from companion.positional import sinusoidal_encoding
from companion.teaching import test


def _wavelengths(d, base=10000.0):
    """Positions per full turn of every (sin, cos) pair, read off the encoding:
    the angle that each pair turns by from position 0 to position 1."""
    pe = sinusoidal_encoding(2, d, base=base, dtype=torch.float64)
    angle = torch.atan2(pe[1, 0::2], pe[1, 1::2])  # omega_i
    return 2 * math.pi / angle


@test("ex-wavelengths")
def shortest_wavelength_is_that_of_the_first_pair(shortest):
    expected = _wavelengths(512).min().item()
    assert math.isclose(float(shortest), expected, rel_tol=1e-4), (
        f"expected {expected:.4f} positions, got {float(shortest):.4f}: the first "
        "pair (i = 0) turns by 1 radian per position; a wavelength is the number of "
        "positions for a full turn, 2 pi / omega_i"
    )


@test("ex-wavelengths", hidden=True)
def longest_wavelength_is_that_of_the_last_pair(longest):
    expected = _wavelengths(512).max().item()
    assert math.isclose(float(longest), expected, rel_tol=1e-4), (
        f"expected {expected:.1f} positions, got {float(longest):.1f}: the last pair "
        "is i = d/2 - 1 = 255, so the exponent is 2i/d = 510/512, not 1"
    )


def _encoding(num_positions, d, base):
    position = torch.arange(num_positions, dtype=torch.float64)[:, None]
    omega = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    pe = torch.empty(num_positions, d, dtype=torch.float64)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(position * omega), torch.cos(position * omega)
    return pe


def _matrix(M_fit):
    M = torch.as_tensor(M_fit, dtype=torch.float64).detach()
    assert M.shape == (8, 8), f"M_fit should be 8 x 8 (d = 8), got {tuple(M.shape)}"
    return M


@test("ex-linear-offset")
def m_fit_moves_every_encoding_five_positions_on(M_fit):
    M, pe = _matrix(M_fit), _encoding(160, 8, 100.0)
    error = (pe[:150] @ M.T - pe[5:155]).abs().max().item()
    if error > 1e-4 and (pe[:150] @ M - pe[5:155]).abs().max().item() < 1e-4:
        raise AssertionError(
            "M_fit is transposed: with encodings as rows, lstsq(A, B) solves A X = B, "
            "so PE(p + 5) = M PE(p) needs M = X^T"
        )
    assert error < 1e-4, (
        f"M_fit @ PE(p) misses PE(p + 5) by up to {error:.2e} over p = 0..149 "
        "(d = 8, base 100)"
    )


@test("ex-linear-offset", hidden=True)
def m_fit_is_the_rotation_m5(M_fit):
    M = _matrix(M_fit)
    omega = 100.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    rotation = torch.zeros(8, 8, dtype=torch.float64)
    for i, angle in enumerate((5 * omega).tolist()):
        c, s = math.cos(angle), math.sin(angle)
        rotation[2 * i : 2 * i + 2, 2 * i : 2 * i + 2] = torch.tensor([[c, s], [-s, c]])
    assert torch.allclose(M, rotation, atol=1e-4), (
        "M_fit should be M_5: block diagonal, each (sin, cos) pair rotated by "
        "5 omega_i, blocks [[cos, sin], [-sin, cos]]"
    )
    assert torch.allclose(M @ M.T, torch.eye(8, dtype=torch.float64), atol=1e-4), (
        "M_fit should be orthogonal (a rotation)"
    )
