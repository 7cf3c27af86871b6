"""Cross-device decoding: files made on the CPU and on DEVICE, each decoded on both.

    python scripts/cross_device.py [IMAGES] --device cuda [--model sic|hyperprior-q4|FILE] [--images N]
                                   [-o results/cross-device.json]

Entropy coding and everything that sets the coding distributions run on the CPU in exact
arithmetic, so every file must decode on either device, to the same latents. Only the float
transforms run on DEVICE: g_a (a file made there may round a latent differently, so the bytes may
differ) and g_s (pixels may differ by float rounding). The report counts decode failures, files
that differ by encoder device, and the largest pixel difference between the two decoders.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

import sicodec
from sicodec.image import list_image_files
from sicodec.models.base import transform_device
from sicodec.models.sic import FILL_MODES


def decode_settings(model) -> list[dict]:
    """Hyperprior: the file as is. SIC: level 1 in every fill mode, and the top level."""
    if not model.progressive:
        return [{}]
    return [{"level": 1, "mode": mode} for mode in FILL_MODES] + [{}]


def compare(images: list[Path], model_name: str, device: str) -> dict:
    model = sicodec.load_model(model_name)
    devices = ("cpu", device)
    on = transform_device(device)
    report = {"device": device, "device_name": torch.cuda.get_device_name(on) if on.type == "cuda" else "cpu",
              "model": model.name, "trained_steps": model.trained_steps, "torch": torch.__version__,
              "images": [p.name for p in images], "decode_failures": [], "files_differing_by_encoder_device": 0,
              "decodes": 0, "decodes_with_differing_pixels": 0, "max_abs_pixel_difference": 0,
              "fraction_of_differing_pixels": 0.0}
    fractions = []
    for path in images:
        files = [sicodec.compress(path, model=model, device=d) for d in devices]
        report["files_differing_by_encoder_device"] += files[0] != files[1]
        for maker, data in zip(devices, files):
            for setting in decode_settings(model):
                pixels = []
                for decoder in devices:
                    try:
                        pixels.append(np.asarray(sicodec.decompress(data, model=model, device=decoder, **setting),
                                                 dtype=np.int16))
                    except sicodec.SicodecError as e:
                        report["decode_failures"].append(f"{path.name} made on {maker}, decoded on {decoder} "
                                                         f"{setting}: {e}")
                if len(pixels) < 2:
                    continue
                diff = np.abs(pixels[0] - pixels[1])
                report["decodes"] += 1
                report["decodes_with_differing_pixels"] += bool(diff.any())
                report["max_abs_pixel_difference"] = max(report["max_abs_pixel_difference"], int(diff.max()))
                fractions.append(float((diff > 0).mean()))
    model.place_transforms("cpu")
    report["fraction_of_differing_pixels"] = float(np.mean(fractions)) if fractions else 0.0
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", nargs="?", default="../shared/data/kodak")
    p.add_argument("--device", default="cuda")
    p.add_argument("--model", default="sic")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("-o", "--output", default="results/cross-device.json")
    a = p.parse_args(argv)
    try:
        images = list_image_files(a.folder)[: a.images]
        report = compare(images, a.model, a.device)
    except sicodec.SicodecError as e:
        print(f"cross_device: error: {e}", file=sys.stderr)
        return 1
    Path(a.output).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "images"}, indent=1))
    return 0 if not report["decode_failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
