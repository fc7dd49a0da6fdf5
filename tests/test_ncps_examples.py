"""The PyTorch examples of the ncps documentation, with `ncps.torch` replaced by `liquidnets`:
what users have today must run unchanged but for the import."""

import pytest
import torch
from torch import nn

from liquidnets import LTC, CfC, CfCCell, LTCCell
from liquidnets.wirings import NCP, AutoNCP


def test_cfc_quickstart():
    rnn = CfC(20, 50)  # (input, hidden units)
    x = torch.randn(2, 3, 20)  # (batch, time, features)
    h0 = torch.zeros(2, 50)  # (batch, units)
    output, hn = rnn(x, h0)
    assert output.shape == (2, 3, 50) and hn.shape == (2, 50)


def test_ltc_quickstart_dense_and_wired():
    rnn = LTC(20, 28)
    output, hn = rnn(torch.randn(2, 3, 20), torch.zeros(2, 28))
    assert output.shape == (2, 3, 28) and hn.shape == (2, 28)

    wiring = AutoNCP(28, 4)  # 28 neurons, 4 outputs
    rnn = LTC(20, wiring, batch_first=True)
    output, hn = rnn(torch.randn(2, 3, 20))
    assert output.shape == (2, 3, 4) and hn.shape == (2, 28)

    wiring = NCP(10, 10, 8, 6, 6, 4, 6)
    rnn = CfC(20, wiring)
    output, hn = rnn(torch.randn(2, 3, 20), torch.zeros(2, 28))
    assert output.shape == (2, 3, 8) and hn.shape == (2, 28)


def test_cells_in_a_hand_written_loop():
    wiring = AutoNCP(16, 2)
    ltc_cell = LTCCell(wiring, 5)
    cfc_cell = CfCCell(5, 16)
    x = torch.randn(4, 10, 5)
    h_ltc, h_cfc = torch.zeros(4, 16), torch.zeros(4, 16)
    for t in range(x.shape[1]):
        y_ltc, h_ltc = ltc_cell(x[:, t], h_ltc)
        y_cfc, h_cfc = cfc_cell(x[:, t], h_cfc, 1.0)
    assert y_ltc.shape == (4, 2) and y_cfc.shape == (4, 16)


def test_twenty_epoch_training_loop_loss_falls():
    torch.manual_seed(0)
    # a noisy sine regression: predict the next value of 10 phase-shifted sines
    t = torch.linspace(0, 8 * torch.pi, 101)
    phases = torch.linspace(0, 1, 10)
    series = torch.sin(t[:, None] + phases[None, :])  # (101, 10)
    x = series[:-1].reshape(4, 25, 10)
    y = series[1:].reshape(4, 25, 10)

    model = CfC(input_size=10, units=32, proj_size=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss_fn = nn.MSELoss()
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        output, _ = model(x)
        loss = loss_fn(output, y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_draw_wiring_diagram(tmp_path):
    pytest.importorskip("networkx")
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wiring = AutoNCP(16, 2)
    CfC(8, wiring)  # building the model builds the wiring, as in ncps
    plt.figure(figsize=(6, 4))
    legend_handles = wiring.draw_graph(draw_labels=True)
    plt.legend(handles=legend_handles, loc="upper center", bbox_to_anchor=(1, 1))
    plt.tight_layout()
    plt.savefig(tmp_path / "wiring.png")
    plt.close()
    assert (tmp_path / "wiring.png").stat().st_size > 1000
