"""The `sicodec` command line. Errors: one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

from .errors import SicodecError
from .fileio import IMAGE_EXTENSIONS, is_stdio, read_file
from .memory import keep_freed_memory
from .models.sic import DEFAULT_FILL_MODE, FILL_MODES
from .models.hyperprior import QUANTIZATIONS
from .train.svi import TRAINING_FILLS

EXIT_ERROR, EXIT_INTERNAL = 1, 3
EXIT_BROKEN_PIPE = 128 + 13  # as a tool killed by SIGPIPE: the reader of stdout went away


def _say(msg: str) -> None:
    print(f"sicodec: {msg}", file=sys.stderr)


def _done(out, line: str) -> None:
    """The line saying what was written: on stderr when the output itself went to stdout ("-")."""
    print(line, file=sys.stderr if is_stdio(out) else sys.stdout)


def _load(a):
    """The model to code with, or a family's name when --bpp picks its quality per file."""
    from .codec import DEFAULT_MODEL, default_model, load_model, qualities_to_fit

    if qualities_to_fit(a.model, a.quality, getattr(a, "level", None), getattr(a, "bpp", None)):
        return a.model
    if a.model is None and default_model() != DEFAULT_MODEL:
        _say(f"note: no weights for the default model {DEFAULT_MODEL} are installed; using {default_model()}")
    return load_model(a.model, a.quality)


def _model_notes(a, model) -> None:
    """MODEL's status (untrained, preliminary), once per command and after its first output, so that an
    error is never preceded by a note."""
    noted = vars(a).setdefault("noted", set())
    if model.name in noted:
        return
    noted.add(model.name)
    status = model.status
    if status == "untrained":
        _say(f"warning: model {model.name} is untrained (random weights); its reconstructions are not meaningful")
    elif status == "preliminary":
        _say(f"note: model {model.name} is preliminary ({model.trained_steps:,} training steps); later weights "
             "will do better")


def _check_device(a) -> None:
    """Refuse an unavailable --device before any file is read or written."""
    from .models.base import transform_device

    transform_device(a.device)


def _default_output(a, suffix: str) -> None:
    """OUTPUT left out: the input's name with SUFFIX beside it (a folder's outputs go into the folder)."""
    if a.output is not None:
        return
    if is_stdio(a.input):
        raise SicodecError("-: the input is stdin, so name the output (- for stdout)")
    src = Path(a.input)
    a.output = str(src if src.is_dir() else src.with_suffix(suffix))


def cmd_compress(a) -> None:
    from .fileio import check_output, check_sic_name
    from .image import list_image_files, open_image

    _check_device(a)
    _default_output(a, ".sic")

    if not is_stdio(a.input) and Path(a.input).is_dir():
        inputs = [p for p in list_image_files(a.input) if not p.name.startswith(".")]
        model = _load(a)
        _batch(a, inputs, ".sic", "compressed", lambda src, out: _compress_one(a, model, src, out))
        return
    # the image first: a bad one is the only message
    image = open_image(read_file(a.input) if is_stdio(a.input) else a.input, name=a.input)
    out = check_output(a.output, a.force, inputs=[a.input])
    check_sic_name(out, "compress")
    _compress_one(a, _load(a), Path(a.input), out, image)


def _compress_one(a, model, src: Path, out: Path, image=None) -> None:
    """Compress SRC (or IMAGE, SRC already opened) into OUT."""
    from .bitstream import parse
    from .codec import compress, load_model
    from .fileio import check_output, write_bytes_atomic

    check_output(out, a.force, inputs=[src])
    t = time.perf_counter()
    data = compress(src if image is None else image, model=model, level=a.level, bpp=a.bpp, seed=a.seed,
                    device=a.device, refine=a.refine)
    dt = time.perf_counter() - t
    write_bytes_atomic(out, data, overwrite=a.force)
    h = parse(data).header
    _done(out, f"{out}: {len(data)} bytes, {8 * len(data) / (h.width * h.height):.4f} bpp, {h.width}x{h.height}, "
               f"model {h.model}, {dt:.2f} s")
    _model_notes(a, load_model(h.model) if isinstance(model, str) else model)


def cmd_decompress(a) -> None:
    from .fileio import IMAGE_OUTPUTS, check_output, output_format

    _check_device(a)
    a.format = a.format and output_format(a.format)
    suffix = IMAGE_OUTPUTS[a.format or "PNG"][0]
    _default_output(a, suffix)

    folder = Path(a.input)
    if not is_stdio(a.input) and folder.is_dir():
        inputs = sorted(p for p in folder.iterdir()
                        if p.is_file() and p.suffix.lower() == ".sic" and not p.name.startswith("."))
        if not inputs:
            raise SicodecError(f"{folder}: no .sic files")
        _batch(a, inputs, suffix, "decompressed", lambda src, out: _decompress_one(a, src, out))
        return
    _decompress_one(a, folder, check_output(a.output, a.force, inputs=[a.input]))


def _decompress_one(a, src: Path, out: Path) -> None:
    from .codec import decompress
    from .fileio import check_output, image_format, save_image_atomic

    if a.samples is not None and is_stdio(out):
        raise SicodecError("-: --samples writes several images; name an output file (OUT-1, OUT-2, ... follow)")
    check_output(out, a.force, inputs=[src])
    image_format(out, a.format)
    data = read_file(src)
    options = {k: v for k, v in (("level", a.level), ("mode", a.mode), ("seed", a.seed), ("device", a.device))
               if v is not None}
    if a.samples is None:
        t = time.perf_counter()
        image = decompress(data, model=a.model, **options)
        save_image_atomic(image, out, overwrite=a.force, fmt=a.format)
        _done(out, f"{out}: {image.size[0]}x{image.size[1]} {image.mode}, {time.perf_counter() - t:.2f} s")
        return
    from .codec import decompress_samples

    seed = options.pop("seed", None)
    images = decompress_samples(data, a.samples, model=a.model, seed=seed, **options)
    names = [out.with_name(f"{out.stem}-{i + 1}{out.suffix}") for i in range(len(images))]
    for name in names:
        check_output(name, a.force, inputs=[src])
    for name, image in zip(names, images):
        save_image_atomic(image, name, overwrite=a.force, fmt=a.format)
        print(f"{name}: {image.size[0]}x{image.size[1]} {image.mode}")


def _batch(a, inputs: list[Path], suffix: str, verb: str, one) -> None:
    """Folder mode: every input into OUTPUT/STEM+suffix (OUTPUT created if missing). A file that fails
    is reported on its own line and skipped; a summary follows, and any failure makes the exit
    status non-zero."""
    from .image import SicodecNotice

    out_dir = Path(a.output)
    if out_dir.exists() and not out_dir.is_dir():
        raise SicodecError(f"{out_dir}: not a folder (the input {a.input} is a folder, so the output must be one)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SicodecError(f"{out_dir}: cannot create the folder ({e.strerror or e})") from None
    failed, claimed = [], {}
    for src in inputs:
        out = out_dir / f"{src.stem}{suffix}"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SicodecNotice)
            try:
                if out.name in claimed:
                    raise SicodecError(f"{src}: its output {out.name} is also that of {claimed[out.name].name}; skipped")
                claimed[out.name] = src
                one(src, out)
            except SicodecError as e:
                _say(f"error: {e if str(e).startswith(str(src)) else f'{src}: {e}'}")
                failed.append(src.name)
            except BrokenPipeError:
                raise
            except Exception as e:  # a bug: reported as one, and the other files still run
                _say(f"internal error: {src}: {type(e).__name__}: {e} (please report this)")
                failed.append(src.name)
            for w in caught:
                if issubclass(w.category, SicodecNotice):
                    _say(f"note: {src}: {w.message}")
    done = len(inputs) - len(failed)
    summary = f"{done} of {len(inputs)} files {verb} into {out_dir}"
    if failed:
        names = ", ".join(failed[:10]) + (f" and {len(failed) - 10} more" if len(failed) > 10 else "")
        raise SicodecError(f"{summary}; {len(failed)} failed: {names}")
    print(summary)


def cmd_truncate(a) -> None:
    from .codec import truncate
    from .fileio import check_output, check_sic_name, write_bytes_atomic

    out = check_output(a.output, a.force, inputs=[a.input])
    check_sic_name(out, "truncate")
    data = truncate(read_file(a.input), a.level)
    write_bytes_atomic(out, data, overwrite=a.force)
    _done(out, f"{out}: level {a.level}, {len(data)} bytes")


def cmd_info(a) -> None:
    from .bitstream import parse

    data = read_file(a.input)
    f = parse(data)
    h = f.header
    px = h.width * h.height
    print(f"file:        {a.input} ({len(data)} bytes, {8 * len(data) / px:.4f} bpp)")
    print(f"model:       {h.model} (weights {h.fingerprint.hex()[:16]})")
    print(f"image:       {h.width}x{h.height} {'grey' if h.grey else 'RGB'}"
          f"{f', ICC profile {len(h.icc_profile)} bytes' if h.icc_profile else ''}")
    print(f"sections:    {len(f.sections)} of {h.sections_total} present")
    from .models.registry import REGISTRY

    spec = REGISTRY.get(h.model)
    progressive = spec is not None and spec.arch == "sic" or h.model.startswith("sic")
    for i, (s, end) in enumerate(zip(f.sections, f.section_offsets()), start=1):
        label = ("z" if i == 1 else f"level {i - 1}") if progressive else f"section {i}"
        print(f"  {label:9s} {len(s):8d} bytes   file up to here: {end:8d} bytes, {8 * end / px:.4f} bpp")


def cmd_models(a) -> None:
    from .codec import list_models

    for m in list_models():
        print(f"{m['name']:16s} {m['status']:14s} {m['description']}")


def cmd_roundtrip(a) -> None:
    import numpy as np

    from .codec import compress, decompress
    from .image import open_image, prepare
    from .metrics import psnr

    with warnings.catch_warnings():  # the image first: a bad one is the only message
        warnings.simplefilter("ignore")
        image = open_image(a.input)  # read once; compress below codes the same image
        ref = prepare(image)
    model = _load(a)
    t0 = time.perf_counter()
    data = compress(image, model=model, refine=a.refine)
    t1 = time.perf_counter()
    out = decompress(data, model=model)
    t2 = time.perf_counter()
    value = psnr(ref.pixels, np.asarray(out.convert("RGB")))
    h, w = ref.pixels.shape[:2]
    print(f"{a.input}: {w}x{h}, model {model.name}: {len(data)} bytes, {8 * len(data) / (w * h):.4f} bpp, "
          f"PSNR {value:.2f} dB, encode {t1 - t0:.2f} s, decode {t2 - t1:.2f} s")
    _model_notes(a, model)


def _save_json(results: dict, path: str | None, force: bool) -> None:
    from .bench.results import DATASET_METRIC_KEYS, METRIC_KEYS, point_key_of, save_results
    from .fileio import check_output

    if path:
        save_results(results, check_output(path, force))
        print(f"{path}: written")
    r = results["results"]
    point = point_key_of(results)
    metrics = [k for k in (*METRIC_KEYS, *DATASET_METRIC_KEYS) if k in r]
    print(results["name"])
    print(f"  {point:>7s} {'bpp':>8s} " + " ".join(f"{m:>11s}" for m in metrics) + f" {'enc s':>7s} {'dec s':>7s}")
    for i in range(len(r["bpp"])):
        print(f"  {r[point][i]!s:>7s} {r['bpp'][i]:8.4f} " + " ".join(f"{r[m][i]:11.4f}" for m in metrics)
              + f" {r['encoding_time'][i]:7.3f} {r['decoding_time'][i]:7.3f}")


def cmd_eval(a) -> None:
    from .evaluate import evaluate_results

    keep_freed_memory()
    _save_json(evaluate_results(a.model, a.folder, levels=a.levels, mode=a.mode, samples=a.samples,
                                metrics=a.metrics.split(","), workers=a.workers, refine=a.refine), a.output, a.force)


def cmd_bench(a) -> None:
    from .bench.run import bench_classic

    keep_freed_memory()
    qualities = [int(q) for q in a.qualities.split(",")] if a.qualities else None
    _save_json(bench_classic(a.codec, a.folder, qualities=qualities, metrics=a.metrics.split(","), workers=a.workers),
               a.output, a.force)


def cmd_bd_rate(a) -> None:
    from .bench.bdrate import bd_rate
    from .bench.results import load_results

    anchor, test = load_results(a.anchor), load_results(a.test)
    print(f"BD-rate of {test['name']} against {anchor['name']} ({a.metric}): {bd_rate(anchor, test, a.metric):+.2f} %")


def cmd_plot(a) -> None:
    from .bench.plot import plot
    from .bench.results import load_results
    from .fileio import check_output

    out = check_output(a.output, a.force)
    plot([load_results(p) for p in a.results], out, max_bpp=a.max_bpp)
    print(f"{out}: written")


def cmd_report(a) -> None:
    from .bench.report import write_report

    try:
        box = tuple(int(v) for v in a.crop.split(","))
        assert len(box) == 3 and min(box) >= 0 and box[2] > 0
    except (ValueError, AssertionError):
        raise SicodecError(f"--crop must be X,Y,SIZE in pixels, not {a.crop!r}") from None
    out = write_report(a.results, a.output, images_dir=a.images, strip_image=a.strip_image,
                       target_bpp=a.target_bpp, box=box, dataset=a.dataset)
    print(f"{out}: written")


def cmd_train(a) -> None:
    import json

    from .models.registry import HYPERPRIOR_LAMBDAS, REGISTRY
    from .train.loop import train

    spec = REGISTRY.get(a.model)
    arch = spec.arch if spec else a.model
    config = dict(spec.config) if spec else {}
    if a.config:
        try:
            config.update(json.loads(a.config))
        except (json.JSONDecodeError, TypeError, ValueError):
            raise SicodecError(f"--config must be a JSON object, not {a.config!r}") from None
    lmbda = a.lmbda if a.lmbda is not None else HYPERPRIOR_LAMBDAS[spec.quality - 1] if spec and spec.quality else 0.0
    loss_options = {k: v for k, v in (("samples", a.samples), ("alpha", a.alpha), ("warmup_steps", a.warmup_steps),
                                      ("schedule", a.schedule), ("rate_tilt", a.rate_tilt), ("fill", a.fill),
                                      ("lpips_weights", a.lpips_weights), ("quantization", a.quantization))
                    if v is not None}
    ckpt = train(arch, a.data, a.out, a.steps, lmbda, config=config, batch=a.batch, crop=a.crop, lr=a.lr,
                 checkpoint_every=a.checkpoint_every, log_every=a.log_every, bf16=a.bf16, seed=a.seed,
                 resume=not a.no_resume, loss_options=loss_options, init=a.init, init_partial=a.init_partial,
                 compile=a.compile, channels_last=a.channels_last, val=a.val, val_every=a.val_every,
                 val_images=a.val_images, val_metrics=tuple(a.val_metrics.split(",")), progress=True,
                 tensorboard=a.tensorboard, ema=a.ema)
    print(f"{ckpt}: written")


def cmd_export(a) -> None:
    from .train.export import export_checkpoint

    out = export_checkpoint(a.checkpoint, a.name, a.out, status=a.status, half=not a.fp32,
                            eval_folder=a.eval, eval_metrics=tuple(a.metrics.split(",")), force=a.force)
    print(f"{out}: written, with its card {out.with_suffix('.json')}")


def cmd_serve(a) -> None:
    from .web import serve

    serve(a.host, a.port, models=a.model or None, max_upload_bytes=int(a.max_upload_mb * 2**20), max_pixels=a.max_pixels)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sicodec", description="Learned, perceptual, progressive image compression.")
    p.add_argument("--version", action="version", version=f"sicodec {__import__('sicodec').__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def device_arg(q, transform):
        q.add_argument("--device", help=f"torch device for the {transform} transform (cpu, cuda, cuda:N; default cpu); "
                                        "entropy coding always runs on the CPU")

    def model_args(q, quality=True):
        q.add_argument("--model", help="registered model name or .safetensors file (default: sic, or the "
                                      "hyperprior while no sic weights are installed)")
        if quality:
            q.add_argument("--quality", type=int, help="quality (rate point) of the model family")

    def refine_arg(q):
        q.add_argument("--refine", type=int, default=0, metavar="STEPS",
                       help="hyperprior models: search STEPS optimisation steps per 1024-px tile for latents that code "
                            "the image better (about 0.4 s per step and 768x512 image on 2 CPU cores; 200 gives "
                            "about 0.5 dB; the decoder is unchanged)")

    q = sub.add_parser("compress", help="image -> .sic file (or a folder of images -> a folder of .sic files)")
    q.add_argument("input", help="image (- for stdin), or a folder: each image in it is compressed to OUTPUT/NAME.sic")
    q.add_argument("output", nargs="?",
                   help=".sic file (- for stdout), or a folder (created if missing) when INPUT is a folder "
                        "(default: beside the input, photo.png -> photo.sic)")
    model_args(q)
    q.add_argument("--level", type=int, help="progressive models: keep levels 1..LEVEL")
    q.add_argument("--bpp", type=float, help="progressive models: the highest level whose file fits this bpp; a "
                                             "family without --quality (hyperprior): its highest quality that fits")
    q.add_argument("--seed", type=int, default=0, help="sampling seed stored in the file (default 0)")
    refine_arg(q)
    device_arg(q, "analysis")
    q.add_argument("--force", action="store_true", help="overwrite an existing output")
    q.set_defaults(fn=cmd_compress)

    q = sub.add_parser("decompress", help=".sic file -> image (format from the extension: PNG, WebP lossless, JPEG and "
                                          "AVIF near-losslessly, TIFF, BMP, PPM, TGA or JPEG 2000), "
                                          "or a folder of .sic files -> a folder of images (PNG unless --format)")
    q.add_argument("input", help=".sic file (- for stdin), or a folder: each .sic file in it is decoded to "
                                 "OUTPUT/NAME.png (or the --format's extension)")
    q.add_argument("output", nargs="?",
                   help="image file (- for stdout), or a folder (created if missing) when INPUT is a folder "
                        "(default: beside the input, photo.sic -> photo.png or the --format's extension)")
    q.add_argument("--format", help=f"image format ({IMAGE_EXTENSIONS.replace('.', '')}) instead of the output's "
                                    "extension: for stdout (PNG by default) and folders")
    q.add_argument("--model", default=None, help="weights to decode with (default: the model named in the file)")
    q.add_argument("--level", type=int, help="progressive files: decode levels 1..LEVEL (default: all present)")
    q.add_argument("--mode", choices=FILL_MODES,
                   help="fill of untransmitted slices: sampled (ancestral, the default, from the predicted Gaussians; "
                        "uniform and gaussian, the paper's, around the hyper mean) or predicted (mean)")
    q.add_argument("--seed", type=int, help="sampling seed (default: the one stored in the file)")
    q.add_argument("--samples", type=int, help="write K members of the synonymous set as OUT-1, OUT-2, ...")
    device_arg(q, "synthesis")
    q.add_argument("--force", action="store_true", help="overwrite an existing output")
    q.set_defaults(fn=cmd_decompress)

    q = sub.add_parser("truncate", help="write the prefix of a progressive file that holds levels 1..LEVEL")
    q.add_argument("input", help=".sic file (- for stdin)")
    q.add_argument("output", help=".sic file (- for stdout)")
    q.add_argument("--level", type=int, required=True)
    q.add_argument("--force", action="store_true", help="overwrite an existing output")
    q.set_defaults(fn=cmd_truncate)

    q = sub.add_parser("info", help="describe a .sic file: model, size, bytes and bpp per section")
    q.add_argument("input", help=".sic file (- for stdin)")
    q.set_defaults(fn=cmd_info)

    q = sub.add_parser("models", help="list the registered models")
    q.set_defaults(fn=cmd_models)

    def measurement_args(q):
        q.add_argument("--metrics", default="psnr,ms-ssim,lpips,dists",
                       help="comma-separated: psnr, ms-ssim, lpips, dists, fid, kid (FID/KID: per point, 256-px patches)")
        q.add_argument("--workers", type=int, default=1, help="images in parallel processes")
        q.add_argument("-o", "--output", help="results JSON (CompressAI layout)")
        q.add_argument("--force", action="store_true", help="overwrite an existing output")

    q = sub.add_parser("eval", help="rate, distortion and perception of a learned model on a folder, from real files")
    q.add_argument("model", help="model or family name (hyperprior: every installed quality) or weights file")
    q.add_argument("folder")
    q.add_argument("--levels", default="all", help="progressive models: all or a list like 1,3,5")
    q.add_argument("--mode", default=DEFAULT_FILL_MODE, choices=FILL_MODES,
                   help=f"fill of untransmitted slices (default {DEFAULT_FILL_MODE}, as in a plain decode)")
    q.add_argument("--samples", type=int, default=1, help="sampled decodes per point (metrics averaged)")
    refine_arg(q)
    measurement_args(q)
    q.set_defaults(fn=cmd_eval)

    q = sub.add_parser("bench", help="a classic codec (jpeg-420, jpeg-444, webp, avif, jxl, heic) on a folder, from real files")
    q.add_argument("codec")
    q.add_argument("folder")
    q.add_argument("--qualities", help="comma-separated quality values (default: the codec's ladder)")
    measurement_args(q)
    q.set_defaults(fn=cmd_bench)

    q = sub.add_parser("bd-rate", help="Bjontegaard delta rate of TEST against ANCHOR (results JSON files)")
    q.add_argument("anchor")
    q.add_argument("test")
    q.add_argument("--metric", default="psnr", choices=("psnr", "ms-ssim", "lpips", "dists"))
    q.set_defaults(fn=cmd_bd_rate)

    q = sub.add_parser("plot", help="rate-distortion-perception curves of results JSON files")
    q.add_argument("results", nargs="+")
    q.add_argument("-o", "--output", required=True, help="image file (.png, .pdf or .svg)")
    q.add_argument("--max-bpp", type=float)
    q.add_argument("--force", action="store_true", help="overwrite an existing output")
    q.set_defaults(fn=cmd_plot)

    q = sub.add_parser("report", help="regenerate docs/results.md (tables, BD-rates, plots, visual strip) from results JSON")
    q.add_argument("results", nargs="?", default="results/kodak", help="folder of results JSON (default results/kodak)")
    q.add_argument("-o", "--output", default="docs/results.md", help="the page; figures go to a folder beside it")
    q.add_argument("--images", help="the images the results were measured on (for the visual strip)")
    q.add_argument("--strip-image", default="kodim23.png")
    q.add_argument("--target-bpp", type=float, default=0.25, help="codecs are shown at their point nearest this")
    q.add_argument("--crop", default="400,130,160", help="X,Y,SIZE of the region shown in the strip")
    q.add_argument("--dataset", default="kodak", help="data set of the published reference curves to overlay")
    q.set_defaults(fn=cmd_report)

    q = sub.add_parser("train", help="train a model on a folder of images (resumable; torchrun for several processes)")
    q.add_argument("model", help="registered model (e.g. hyperprior-q4: its configuration and lambda) or architecture")
    q.add_argument("data", help="folder of training images (random crops and flips)")
    q.add_argument("out", help="run folder: checkpoint.pt, best.pt, log.csv, validation.csv")
    q.add_argument("--steps", type=int, default=100_000, help="train until this many optimiser steps")
    q.add_argument("--lambda", dest="lmbda", type=float, help="rate-distortion trade-off on the 255^2 MSE scale")
    q.add_argument("--config", help="architecture options as JSON, e.g. '{\"N\": 128, \"M\": 192}'")
    q.add_argument("--batch", type=int, default=8, help="crops per step and process")
    q.add_argument("--crop", type=int, default=256)
    q.add_argument("--lr", type=float, default=1e-4, help="learning rate (a new value on resume starts a new stage)")
    q.add_argument("--init", help="start from these weights (.safetensors) instead of random ones")
    q.add_argument("--init-partial", action="store_true",
                   help="--init from another architecture: load the tensors that match in name and shape")
    q.add_argument("--bf16", action="store_true", help="bf16 autocast for the transforms (entropy models stay float32)")
    q.add_argument("--compile", action="store_true", help="torch.compile the analysis and synthesis transforms")
    q.add_argument("--channels-last", action="store_true", help="channels_last memory format")
    q.add_argument("--val", help="validation folder: real files coded and read back every --val-every steps")
    q.add_argument("--val-every", type=int, default=2000)
    q.add_argument("--val-images", type=int, help="validate on the first N images of the folder")
    q.add_argument("--val-metrics", default="psnr,ms-ssim,lpips", help="comma-separated: psnr, ms-ssim, lpips, dists")
    q.add_argument("--checkpoint-every", type=int, default=200)
    q.add_argument("--log-every", type=int, default=20)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--ema", type=float, metavar="DECAY",
                   help="also keep an exponential moving average of the weights (e.g. 0.999); validation, the "
                        "best checkpoint and export use it")
    q.add_argument("--quantization", choices=QUANTIZATIONS,
                   help="hyperprior: the proxy for rounding in training; mixed = noise for the rates, rounded "
                        "latents (straight-through) for h_s and g_s (default noise)")
    q.add_argument("--no-resume", action="store_true", help="start afresh even if OUT holds a checkpoint")
    q.add_argument("--tensorboard", action="store_true", help="also log to OUT/tensorboard (needs tensorboard)")
    g = q.add_argument_group("SIC (SVI loss)")
    g.add_argument("--samples", type=int, help="sampled reconstructions per step (M)")
    g.add_argument("--alpha", type=float, help="weight of the sampled level against the full transmission")
    g.add_argument("--warmup-steps", type=int, help="steps with the rate-balancing term")
    g.add_argument("--schedule", choices=("rolling", "random"), help="which level each step trains")
    g.add_argument("--fill", choices=TRAINING_FILLS,
                   help="how the untransmitted slices of the trained level are sampled (default uniform, the "
                        "paper's; ancestral is the decoder's default); validation decodes in the same fill")
    g.add_argument("--rate-tilt", type=float,
                   help="multiply level 1's rate weight by this, falling geometrically to 1 at the top level")
    g.add_argument("--lpips-weights", help="LPIPS weights file or folder for the perceptual term")
    q.set_defaults(fn=cmd_train)

    q = sub.add_parser("export", help="training checkpoint -> weights (.safetensors) and a JSON card")
    q.add_argument("checkpoint")
    q.add_argument("name", help="model name, e.g. hyperprior-q4 (registered names are found by `--model NAME`)")
    q.add_argument("-o", "--out", default=None, help="folder (default: the package's weights folder)")
    q.add_argument("--status", default="trained", choices=("trained", "preliminary"))
    q.add_argument("--fp32", action="store_true", help="keep float32 (default float16)")
    q.add_argument("--eval", help="evaluate the exported weights on this folder and put the results in the card")
    q.add_argument("--metrics", default="psnr,ms-ssim,lpips,dists", help="metrics of --eval")
    q.add_argument("--force", action="store_true", help="overwrite existing weights of that name")
    q.set_defaults(fn=cmd_export)

    q = sub.add_parser("roundtrip", help="compress and decompress an image in memory; print size, bpp and PSNR")
    q.add_argument("input")
    model_args(q)
    refine_arg(q)
    q.set_defaults(fn=cmd_roundtrip)

    q = sub.add_parser("serve", help="a local web page to try models and levels and compare with JPEG/WebP/AVIF (web extra)")
    q.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    q.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    q.add_argument("--model", action="append", help="offer this model (name or .safetensors file; repeatable; "
                                                   "default: every installed model)")
    q.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload in MiB (default 20)")
    q.add_argument("--max-pixels", type=int, default=2**24, help="largest image, width x height (default 2^24)")
    q.set_defaults(fn=cmd_serve)
    return p


class _Terminated(BaseException):
    """SIGTERM, turned into an exception so that temporary outputs are removed on the way out."""


def _on_sigterm(signum, frame):
    raise _Terminated()


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not report the closed pipe again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .image import SicodecNotice

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", SicodecNotice)
            try:
                args.fn(args)
                sys.stdout.flush()  # a closed pipe shows here, inside the handlers below
            finally:
                for w in caught:
                    if issubclass(w.category, SicodecNotice):
                        _say(f"note: {w.message}")
        return 0
    except SicodecError as e:
        _say(f"error: {e}")
        return EXIT_ERROR
    except BrokenPipeError:  # `sicodec info x.sic | head`: stop quietly, as other command-line tools do
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt as e:
        _say(f"interrupted: {e}" if str(e) else "interrupted")
        return 130
    except _Terminated:
        _say("terminated")
        return 143
    except Exception as e:  # a bug: still one line, with what is needed to report it
        _say(f"internal error: {type(e).__name__}: {e} (please report this)")
        return EXIT_INTERNAL
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
