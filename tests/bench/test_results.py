import json
import math

import pytest

from sicodec.bench.results import load_results, make_results, results_from_rows, save_results, validate_results
from sicodec.errors import SicodecError


def good():
    return {"name": "x", "description": "d", "meta": {"k": 1},
            "results": {"quality": [10, 20], "bpp": [0.2, 0.4], "psnr-rgb": [28.0, 31.5],
                        "ms-ssim-rgb": [0.95, 0.97], "encoding_time": [0.01, 0.02], "decoding_time": [0.01, 0.01]},
            "per_image": [{"image": "a.png", "point": 10, "bpp": 0.2}, {"image": "a.png", "point": 20, "bpp": 0.4}]}


def test_good_results_validate():
    d = good()
    assert validate_results(d) is d


@pytest.mark.parametrize("change, match", [
    (lambda d: d.update(name=""), "'name'"),
    (lambda d: d.pop("description"), "'description'"),
    (lambda d: d.update(meta=[]), "'meta'"),
    (lambda d: d.update(results={}), "'results'"),
    (lambda d: d["results"].pop("bpp"), "no 'bpp'"),
    (lambda d: [d["results"].pop(k) for k in ("psnr-rgb", "ms-ssim-rgb")], "no quality metric"),
    (lambda d: d["results"]["psnr-rgb"].append(33.0), "psnr-rgb.*3 values.*2"),
    (lambda d: d["results"].update(bpp="0.2"), "must be a list"),
    (lambda d: d["results"].update(bpp=[]), "is empty"),
    (lambda d: d["results"]["psnr-rgb"].__setitem__(0, "28"), "not a finite number"),
    (lambda d: d["results"]["psnr-rgb"].__setitem__(0, math.nan), "not a finite number"),
    (lambda d: d["results"]["psnr-rgb"].__setitem__(0, True), "not a finite number"),
    (lambda d: d["results"]["bpp"].__setitem__(0, 0.0), "must be > 0"),
    (lambda d: d["results"]["ms-ssim-rgb"].__setitem__(0, 1.5), r"\[0, 1\]"),
    (lambda d: d.update(per_image={}), "'per_image'"),
    (lambda d: d["per_image"][0].pop("point"), r"per_image\[0\].*'point'"),
    (lambda d: d["per_image"][1].update(lpips=math.inf), "not finite"),
    (lambda d: d["results"].update(fid=[1.0, -0.5]), r"results\['fid'\]\[1\].*>= 0"),
    (lambda d: d["results"].update(kid_std=[-1e-3, 0.0]), r"'kid_std'.*>= 0"),
    (lambda d: d["results"].update(kid=[0.01]), "kid.*1 values"),
])
def test_bad_results_are_refused_with_a_message(change, match):
    d = good()
    change(d)
    with pytest.raises(SicodecError, match=match):
        validate_results(d, where="f.json")


def test_not_a_dict():
    with pytest.raises(SicodecError, match="JSON object"):
        validate_results([1, 2])


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "sub" / "r.json"
    assert save_results(good(), path) == path
    assert load_results(path) == good()
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left


def test_save_refuses_invalid_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "r.json"
    save_results(good(), path)
    bad = good()
    bad["results"]["bpp"].append(1.0)
    with pytest.raises(SicodecError):
        save_results(bad, path)
    assert load_results(path) == good()


def test_load_errors(tmp_path):
    with pytest.raises(SicodecError, match="no such results file"):
        load_results(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(SicodecError, match="not valid JSON"):
        load_results(tmp_path / "bad.json")
    (tmp_path / "shape.json").write_text(json.dumps({"name": "x"}))
    with pytest.raises(SicodecError, match="shape.json.*description"):
        load_results(tmp_path / "shape.json")


def rows():
    out = []
    for img, off in (("a.png", 0.0), ("b.png", 1.0)):
        for q, bpp in ((20, 0.5), (10, 0.25)):
            out.append({"image": img, "point": q, "bpp": bpp + off / 10, "psnr-rgb": 30.0 + q / 10 + off,
                        "encoding_time": 0.1, "decoding_time": 0.05, "width": 8, "height": 8, "bytes": 4})
    return out


def test_rows_are_averaged_per_point_in_order():
    r = results_from_rows(rows(), point_key="level")
    assert list(r) == ["level", "bpp", "psnr-rgb", "encoding_time", "decoding_time"]
    assert r["level"] == [10, 20]
    assert r["bpp"] == pytest.approx([0.3, 0.55])
    assert r["psnr-rgb"] == pytest.approx([31.5, 32.5])


def test_make_results_keeps_rows_and_validates():
    d = make_results("m", "desc", rows(), {"note": 1})
    assert d["per_image"] == rows() and d["meta"] == {"note": 1} and d["results"]["quality"] == [10, 20]


def test_fid_and_kid_are_optional_per_point_lists():
    d = good()
    d["results"].update(fid=[12.0, 8.5], kid=[0.004, -0.0002], kid_std=[0.001, 0.0])  # KID may dip below 0
    assert validate_results(d) is d
    only = {"name": "x", "description": "", "results": {"bpp": [0.3], "fid": [20.0]}}
    assert validate_results(only) is only


def test_make_results_adds_per_point_metrics_in_place():
    d = make_results("m", "desc", rows(), point_metrics={"kid_std": [0.1, 0.2], "kid": [0.5, 0.3], "fid": [9.0, 4.0]})
    assert list(d["results"]) == ["quality", "bpp", "psnr-rgb", "fid", "kid", "kid_std", "encoding_time",
                                  "decoding_time"]
    assert d["results"]["fid"] == [9.0, 4.0] and d["per_image"] == rows()
    with pytest.raises(SicodecError, match="one value per rate point"):
        make_results("m", "desc", rows(), point_metrics={"fid": [1.0]})
    with pytest.raises(SicodecError, match="'psnr-rgb' is both"):
        make_results("m", "desc", rows(), point_metrics={"psnr-rgb": [1.0, 2.0]})


def test_rows_that_disagree_are_refused():
    r = rows()
    del r[1]["psnr-rgb"]
    with pytest.raises(SicodecError, match="disagree"):
        results_from_rows(r)
    with pytest.raises(SicodecError, match="different images"):
        results_from_rows(rows()[:3])
    with pytest.raises(SicodecError, match="no rows"):
        results_from_rows([])
    with pytest.raises(SicodecError, match="point_key"):
        results_from_rows(rows(), point_key="q")
    with pytest.raises(SicodecError, match="numeric 'point'"):
        results_from_rows([{"point": "high", "bpp": 1.0}])
