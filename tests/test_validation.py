"""Tests of companion.validation: the named checks refuse booleans and other
non-numbers where a size or a number is expected, as the public functions that
open with them must."""

import pytest
import torch

from companion.attention import causal_mask
from companion.validation import (
    check_fraction,
    check_index_tensor,
    check_positive_int,
    check_positive_number,
    check_sizes,
)
from companion.variants import local_mask, strided_mask


@pytest.mark.parametrize("bad", [True, False, 0, -1, 2.0, "3", None])
def test_sizes_refuse_booleans_floats_and_non_positive(bad):
    with pytest.raises(ValueError, match="n must be a positive integer"):
        check_positive_int(bad, "n")
    with pytest.raises(ValueError, match="d_ff must be a positive integer"):
        check_sizes(d_model=4, d_ff=bad)


def test_builders_refuse_booleans_as_sizes():
    """Booleans are ints in Python: `local_mask(True, 1)` used to be a 1x1 mask."""
    with pytest.raises(ValueError, match="n must be a positive integer, got True"):
        local_mask(True, 1)
    with pytest.raises(ValueError, match="stride must be a positive integer"):
        strided_mask(4, True)
    with pytest.raises(ValueError, match="n must be a positive integer, got True"):
        causal_mask(True)


def test_numbers_must_be_representable_in_the_dtype():
    check_positive_number(1e-39, "t", torch.float32)  # subnormal, still > 0
    with pytest.raises(ValueError, match="t=1e-50 is not representable"):
        check_positive_number(1e-50, "t", torch.float32)
    with pytest.raises(ValueError, match="t=100000.0 is not representable"):
        check_positive_number(1e5, "t", torch.float16)
    with pytest.raises(ValueError, match="t must be a positive finite number"):
        check_positive_number(True, "t")


@pytest.mark.parametrize("bad", [True, -0.1, 1.5, float("nan")])
def test_fraction(bad):
    with pytest.raises(ValueError, match=r"p must be a number in \[0, 1\]"):
        check_fraction(bad, "p")


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int16, torch.bool, torch.float32])
def test_index_tensors_are_int32_or_int64(dtype):
    """uint8 would wrap around and be read as a mask by indexing; int16 is refused
    by nn.Embedding; both are refused here, before torch sees them."""
    with pytest.raises(ValueError, match="ids must be an int64 or int32 tensor"):
        check_index_tensor(torch.zeros(3, dtype=dtype), "ids")
    check_index_tensor(torch.zeros(3, dtype=torch.int32), "ids")
