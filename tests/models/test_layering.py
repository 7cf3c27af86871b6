"""The codec's layers depend downwards only: models and entropy coding never import training or benchmarks."""

import subprocess
import sys

PROBE = """
import sys
import sicodec.codec
from sicodec.models.registry import _architectures
_architectures()
import sicodec.models.refine
print(" ".join(sorted(m for m in sys.modules if m.startswith(("sicodec.train", "sicodec.bench", "sicodec.web")))))
"""


def test_codec_and_models_do_not_import_training_or_benchmarks():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "", f"imported by the codec or its models: {out.strip()}"
