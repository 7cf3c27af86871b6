"""Benchmarks: classic codecs through Pillow, results in CompressAI's JSON layout, BD-rate, plots, references.

    classic     codec specs (JPEG 4:2:0/4:4:4, WebP, AVIF, JPEG XL, HEIC), available_codecs(), encode/decode
    run         bench_classic(codec, folder) -> results dict; quality_metrics, make_results for any codec
    results     the JSON layout: validate_results, load_results, save_results (atomic), results_from_rows
    bdrate      bd_rate(anchor, test, metric) in percent (PCHIP on log-rate over the shared quality range)
    plot        plot(results_list, "rd.png") (needs matplotlib)
    references  published curves: list_references(), load_reference("kodak/ms-illm")

Nothing here is imported by `import sicodec`; the codec plugins and matplotlib are imported only when used.
"""
