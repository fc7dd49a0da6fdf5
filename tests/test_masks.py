"""Variable-length sequences: a padding mask or lengths. A padded step leaves the state
unchanged, and the last output is the last valid step's; a padded batch equals each sequence
run alone, unpadded, on the fused and on the reference path."""

import pytest
import torch

import liquidnets
from test_layers import MODELS, assert_state_close, irregular, make

LENGTHS = [7, 3, 5, 1]


def padded_batch(dtype=torch.float32):
    torch.manual_seed(4)
    x = torch.randn(len(LENGTHS), 7, 4, dtype=dtype)
    ts = irregular(len(LENGTHS), 7).to(dtype)
    mask = torch.arange(7) < torch.tensor(LENGTHS).unsqueeze(1)
    x = torch.where(mask.unsqueeze(-1), x, 1e3 * torch.randn_like(x))  # garbage in the padding
    return x, ts, mask


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "reference"])
@pytest.mark.parametrize("name", MODELS)
def test_a_padded_batch_equals_each_sequence_alone(name, fused):
    model = make(name)
    x, ts, mask = padded_batch()
    with liquidnets.fast.disabled() if not fused else torch.enable_grad():
        out, h_n = model(x, timespans=ts, mask=mask)
        for b, n in enumerate(LENGTHS):
            alone, h_alone = model(x[b : b + 1, :n], timespans=ts[b : b + 1, :n])
            torch.testing.assert_close(out[b, :n], alone[0], rtol=1e-4, atol=1e-5)
            # padded steps repeat the last valid output
            torch.testing.assert_close(out[b, n:], alone[0, -1].expand(7 - n, -1))
            assert_state_close(
                tuple(s[b : b + 1] for s in (h_n if isinstance(h_n, tuple) else (h_n,))),
                h_alone if isinstance(h_alone, tuple) else (h_alone,),
                rtol=1e-4,
                atol=1e-5,
            )


@pytest.mark.parametrize("name", ["cfc", "cfc_autoncp", "ltc", "ltc_autoncp_proj", "cfc_mixed"])
def test_lengths_mask_and_last_output_agree(name):
    x, ts, mask = padded_batch()
    model = make(name)
    by_mask, _ = model(x, timespans=ts, mask=mask)
    by_len, _ = model(x, timespans=ts, lengths=torch.tensor(LENGTHS))
    torch.testing.assert_close(by_mask, by_len)
    last = make(name, return_sequences=False)
    final, _ = last(x, timespans=ts, lengths=LENGTHS)
    torch.testing.assert_close(final, by_mask[torch.arange(4), torch.tensor(LENGTHS) - 1])


@pytest.mark.parametrize("name", ["cfc", "cfc_no_gate", "cfc_autoncp", "ltc", "ltc_random"])
def test_gradients_of_fused_and_reference_agree_and_padding_gets_none(name):
    x, ts, mask = padded_batch()
    grads = []
    for fused in (True, False):
        model = make(name)
        xi = x.clone().requires_grad_(True)
        tsi = ts.clone().requires_grad_(True)
        with liquidnets.fast.disabled() if not fused else torch.enable_grad():
            out, h_n = model(xi, timespans=tsi, mask=mask)
            (out.square().sum() + h_n.sum()).backward()
        grads.append((xi.grad, tsi.grad, [p.grad for p in model.parameters()]))
        assert float(xi.grad[~mask].abs().max()) == 0.0  # padding cannot matter
    (xa, ta, pa), (xb, tb, pb) = grads
    torch.testing.assert_close(xa, xb, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ta, tb, rtol=1e-4, atol=1e-5)
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_a_gap_in_the_middle_holds_the_state():
    model = make("cfc")
    x, ts, _ = padded_batch()
    mask = torch.ones(4, 7, dtype=torch.bool)
    mask[:, 2:4] = False
    out, _ = model(x, timespans=ts, mask=mask)
    keep = torch.tensor([0, 1, 4, 5, 6])
    alone, _ = model(x[:, keep], timespans=ts[:, keep])
    torch.testing.assert_close(out[:, keep], alone, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out[:, 2], out[:, 1])


def test_time_major_and_unbatched_layouts():
    model = make("ltc", batch_first=False)
    x, ts, mask = padded_batch()
    out, _ = model(x.transpose(0, 1), timespans=ts.t(), mask=mask.t())
    ref, _ = make("ltc")(x, timespans=ts, mask=mask)
    torch.testing.assert_close(out.transpose(0, 1), ref)
    single, _ = make("ltc")(x[1], timespans=ts[1], mask=mask[1])
    torch.testing.assert_close(single, ref[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mask": torch.ones(4, 6, dtype=torch.bool)}, r"mask must have shape \(4, 7\)"),
        ({"mask": torch.full((4, 7), 0.5)}, "mask must be bool"),
        ({"lengths": [7, 3, 9, 1]}, r"lengths must lie in \[0, 7\]"),
        ({"lengths": [7, 3]}, "lengths must be 4 integers"),
        ({"lengths": [7, 3, 5, 1], "mask": torch.ones(4, 7, dtype=torch.bool)}, "not both"),
    ],
)
def test_bad_masks_are_named(kwargs, message):
    x, _, _ = padded_batch()
    with pytest.raises(ValueError, match=message):
        make("cfc")(x, **kwargs)
