"""Fixed-point entropy-parameter networks: exact, order-independent, close to the float network."""

import subprocess
import sys

import torch
from torch import nn

from sicodec.entropy.exact import ExactSequential, from_fixed, to_fixed
from sicodec.models.layers import conv, deconv


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(deconv(8, 16), nn.ReLU(), deconv(16, 16), nn.LeakyReLU(0.1), conv(16, 12, 3, 1), nn.ReLU()).eval()


def test_close_to_the_float_network():
    net = _net()
    z = torch.round(torch.randn(1, 8, 6, 5) * 4)
    exact = from_fixed(ExactSequential(net)(to_fixed(z)))
    with torch.no_grad():
        ref = net(z.double().to(torch.float32)).double()
    assert (exact - ref).abs().max() < 1e-3 * (1 + ref.abs().max())


def test_independent_of_summation_order():
    """Reversing the input channels (and weights) changes the order of every sum, not the result."""
    net = _net()
    z = torch.round(torch.randn(1, 8, 7, 9) * 20)
    a = ExactSequential(net)(to_fixed(z))
    flipped = _net()
    with torch.no_grad():
        flipped[0].weight.copy_(net[0].weight.flip(0))
    b = ExactSequential(flipped)(to_fixed(z.flip(1)))
    assert torch.equal(a, b)
    assert torch.equal(a, torch.round(a))  # integers throughout


def test_extreme_inputs_stay_exact_and_finite():
    net = _net()
    z = torch.full((1, 8, 3, 3), 2.0**39)
    z[0, ::2] *= -1
    out = ExactSequential(net)(to_fixed(z))
    assert torch.isfinite(out).all() and torch.equal(out, torch.round(out))


_PROGRAM = """
import sys, torch
torch.set_num_threads(int(sys.argv[1]))
sys.path.insert(0, sys.argv[2])
from test_exact import _net
from sicodec.entropy.exact import ExactSequential, to_fixed
torch.manual_seed(5)
z = torch.round(torch.randn(1, 8, 16, 16) * 10)
out = ExactSequential(_net())(to_fixed(z))
sys.stdout.write(out.numpy().tobytes().hex()[:100000])
"""


def test_same_bits_with_one_and_two_threads_in_other_processes():
    here = str(__import__("pathlib").Path(__file__).parent)
    runs = [subprocess.run([sys.executable, "-c", _PROGRAM, str(t), here], capture_output=True, text=True, check=True).stdout for t in (1, 2)]
    assert runs[0] == runs[1] and len(runs[0]) > 1000
