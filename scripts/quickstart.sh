#!/usr/bin/env bash
# Set up, then compress and decompress a sample image and print size, bpp and PSNR.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
sample=sicodec/samples/kodim23-384x256.png
out=$(mktemp -d)
.venv/bin/sicodec compress "$sample" "$out/sample.sic"
.venv/bin/sicodec decompress "$out/sample.sic" "$out/sample.png"
.venv/bin/sicodec info "$out/sample.sic"
.venv/bin/sicodec roundtrip "$sample"
echo "files written to $out"
