"""Assignment tests for Part 4, chapter 1: why position?"""

import numpy as np
import torch

from companion.teaching import test


@test("ex-permute-softmax")
def the_check_uses_a_real_permutation_and_holds(S, P, commutes):
    S = torch.as_tensor(S, dtype=torch.float64)
    P = torch.as_tensor(P, dtype=torch.float64)
    n = S.shape[0]
    assert S.dim() == 2 and S.shape == (n, n) and n > 1, (
        f"S should be a square matrix of scores, got shape {tuple(S.shape)}"
    )
    assert P.shape == (n, n), f"P should be {n} x {n} like S, got {tuple(P.shape)}"
    is_permutation = (
        bool(((P == 0) | (P == 1)).all())
        and torch.equal(P.sum(0), torch.ones(n, dtype=torch.float64))
        and torch.equal(P.sum(1), torch.ones(n, dtype=torch.float64))
    )
    assert is_permutation, (
        "P should be a permutation matrix: 0s and 1s, a single 1 in every row and "
        "column (e.g. the rows of the identity in another order)"
    )
    assert not torch.equal(P, torch.eye(n, dtype=torch.float64)), (
        "P is the identity: choose a permutation that moves something"
    )
    row_softmax = torch.softmax(S, -1)
    assert not torch.allclose(torch.softmax(P @ S @ P.T, -1), row_softmax), (
        "softmax(P S P^T) equals softmax(S) here, so the check proves nothing: use "
        "random scores"
    )
    holds = torch.allclose(torch.softmax(P @ S @ P.T, -1), P @ row_softmax @ P.T)
    assert isinstance(commutes, bool | np.bool_ | torch.Tensor), (
        f"commutes should be True or False, got {commutes!r}"
    )
    assert bool(commutes) == holds, (
        f"commutes should be the outcome of comparing softmax(P S P^T) with "
        f"P softmax(S) P^T (row softmax, up to rounding): {holds}"
    )


def _code(binary, p):
    try:
        code = torch.as_tensor(binary(p), dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError) as error:
        raise AssertionError(f"binary({p}) should return 16 numbers: {error}") from None
    assert code.shape == (16,), (
        f"binary({p}) should have 16 entries, one per binary digit, got shape "
        f"{tuple(code.shape)}"
    )
    return code


@test("ex-binary")
def binary_gives_sixteen_signs_unique_per_position(binary):
    positions = [*range(256), 1000, 4095, 40000, 65535]
    codes = torch.stack([_code(binary, p) for p in positions])
    assert bool((codes.abs() == 1).all()), (
        "every digit should be mapped to +1 or -1, e.g. 1 -> +1 and 0 -> -1"
    )
    distinct = torch.unique(codes, dim=0).shape[0]
    assert distinct == len(positions), (
        f"only {distinct} distinct codes for {len(positions)} positions below 2^16: "
        "each position should get its own binary digits"
    )


@test("ex-binary", hidden=True)
def binary_codes_differ_where_the_bits_differ(binary):
    pairs = [(7, 8), (8, 9), (0, 65535), (1234, 4321), (255, 256), (32768, 1)]
    for p, q in pairs:
        differing = int((_code(binary, p) != _code(binary, q)).sum())
        expected = bin(p ^ q).count("1")
        assert differing == expected, (
            f"{p} and {q} differ in {expected} binary digits, but their codes in "
            f"{differing} entries"
        )
    closer = _code(binary, 8) @ _code(binary, 9) > _code(binary, 7) @ _code(binary, 8)
    assert closer, "positions 8 and 9 should have more similar codes than 7 and 8"
