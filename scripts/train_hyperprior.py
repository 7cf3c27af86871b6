"""Background training of one hyperprior quality (interim entry point until `sicodec train`)."""
import sys
import torch
from sicodec.train.loop import train

q, steps, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 2
torch.set_num_threads(threads)
from sicodec.models.registry import HYPERPRIOR_LAMBDAS
train("hyperprior", "../shared/data/train", out, steps, HYPERPRIOR_LAMBDAS[q - 1],
      config={"N": 128, "M": 192}, batch=8, crop=int(sys.argv[6]) if len(sys.argv) > 6 and sys.argv[6].isdigit() else 256, lr=float(sys.argv[5]) if len(sys.argv) > 5 else 1e-4, bf16="--bf16" in sys.argv)
