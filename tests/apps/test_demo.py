"""``hybridseg demo``: the comparison on the embedded sample, its table and its figure."""

import numpy as np
import pytest
from PIL import Image

from hybridseg.apps._demo import (
    DEMO_METHODS,
    PRETRAINED_METHODS,
    default_methods,
    format_table,
    free_path,
    run_demo,
)
from hybridseg.apps.cli import main

QUICK = "prior,splitmerge"


def test_run_demo_scores_and_figure(tmp_path):
    out = tmp_path / "fig.png"
    results = run_demo("camvid", methods=("prior", "splitmerge"), out=out, verbose=False)
    assert [r["method"] for r in results] == ["prior", "splitmerge"]
    for r in results:
        assert 0 < r["miou"] < 1 and 0 < r["pixel_accuracy"] <= 1
        assert 0 <= r["boundary_f1"] <= 1
        assert r["fit_seconds"] >= 0 and r["predict_seconds_per_image"] > 0
    # Split-and-merge looks at the pixels: it beats the no-pixel floor.
    assert results[1]["miou"] > results[0]["miou"]
    with Image.open(out) as fig:
        assert fig.format == "PNG"
        width, height = fig.size
    # Four columns (image, truth, two methods) and two rows (the sample's test images).
    assert width > 4 * 200 and height > 2 * 150
    table = format_table(results, title="t")
    assert table.splitlines()[0] == "t" and "split-and-merge rules" in table


def test_membrane_sample(tmp_path):
    results = run_demo("membrane", methods=("prior", "splitmerge"), out=None, verbose=False)
    assert len(results) == 2


def test_cli_never_overwrites_without_asking(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--methods", QUICK, "--quiet"]) == 0
    assert main(["demo", "--methods", QUICK, "--quiet"]) == 0
    assert (tmp_path / "hybridseg-demo.png").exists()
    assert (tmp_path / "hybridseg-demo-1.png").exists()
    out = capsys.readouterr().out
    assert "figure: hybridseg-demo-1.png" in out and "mIoU" in out
    target = tmp_path / "mine.png"
    target.write_bytes(b"precious")
    assert main(["demo", "--methods", QUICK, "--quiet", "--out", str(target)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert target.read_bytes() == b"precious"
    assert main(["demo", "--methods", QUICK, "--quiet", "--out", str(target),
                 "--overwrite"]) == 0
    with Image.open(target) as fig:
        assert fig.format == "PNG"


@pytest.mark.parametrize("args, message", [
    (["--methods", "prior,resnet"], "methods must be among"),
    (["--methods", ","], "methods is empty"),
    (["--out", "fig.jpg"], "must name a .png file"),
    (["--out", "no/such/folder/fig.png"], "folder of --out does not exist"),
])
def test_cli_bad_arguments(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--quiet", *args]) == 1
    assert message in capsys.readouterr().err


def test_free_path(tmp_path):
    p = tmp_path / "a.png"
    assert free_path(p) == p
    p.touch()
    assert free_path(p) == tmp_path / "a-1.png"
    (tmp_path / "a-1.png").touch()
    assert free_path(p) == tmp_path / "a-2.png"


def test_demo_methods_are_the_classical_pipelines_and_the_shipped_unet():
    from hybridseg.classical import CLASSICAL_PIPELINES

    assert set(DEMO_METHODS) == {"prior", *CLASSICAL_PIPELINES, *PRETRAINED_METHODS}
    assert np.all([isinstance(m, str) for m in DEMO_METHODS])
    assert default_methods("membrane") == ("prior", *CLASSICAL_PIPELINES)
    with pytest.raises(ValueError, match="camvid sample only"):
        run_demo("membrane", methods=("unet",), verbose=False)


def test_deep_rows_use_the_shipped_unet(tmp_path):
    pytest.importorskip("torch")
    results = run_demo("camvid", methods=("prior", "unet", "unet+dense", "unet+crfrnn"),
                       out=None, verbose=False)
    prior, unet, dense, crfrnn = results
    assert unet["fit_seconds"] < 1 and crfrnn["fit_seconds"] < 1  # nothing fitted here
    # Trained on 367 CamVid images, the networks beat the no-pixel floor by far.
    for row in (unet, dense, crfrnn):
        assert row["miou"] > prior["miou"] + 0.1
    assert "not fitted here" in format_table(results)


def test_a_dangling_link_is_not_a_free_name(tmp_path):
    import os

    os.symlink(tmp_path / "missing", tmp_path / "hybridseg-demo.png")
    assert free_path(tmp_path / "hybridseg-demo.png") == tmp_path / "hybridseg-demo-1.png"


def test_table_notes_the_shared_pixel_classifier():
    rows = [dict(method=m, miou=0.5, pixel_accuracy=0.5, boundary_f1=0.5, fit_seconds=1.0,
                 predict_seconds_per_image=0.1) for m in ("pixel+grid", "pixel+dense")]
    assert "which pixel+grid's time includes, once" in format_table(rows)
    assert "once" not in format_table(rows[:1])
    assert "the pixel row's" in format_table([*rows, dict(rows[0], method="pixel")])
    assert "with the classifier's fit" in format_table(rows)


def test_crf_rows_are_the_pipelines_fit_would_give():
    # The demo's sharing (out-of-fold probabilities once, the pixel row's classifier)
    # gives the labels of make_classical_pipeline(...).fit on a fresh pipeline.
    from hybridseg.apps._demo import _estimator
    from hybridseg.classical import make_classical_pipeline
    from hybridseg.datasets import load_splits

    train, val, test = load_splits("sample:membrane")
    X = [im[:96, :96] for im in train.images + val.images]
    y = [lab[:96, :96] for lab in train.labels + val.labels]
    shared = {}
    pixel = _estimator("pixel", shared, random_state=0, n_jobs=1).fit(X, y)
    shared["pixel"] = pixel.named_steps["pixel"]
    ours = _estimator("pixel+grid", shared, random_state=0, n_jobs=1).fit(X, y)
    plain = make_classical_pipeline("pixel+grid", random_state=0, n_jobs=1).fit(X, y)
    assert ours.pipeline.named_steps["crf"].weight_ == plain.named_steps["crf"].weight_
    for a, b in zip(ours.predict([im[:96, :96] for im in test.images]),
                    plain.predict([im[:96, :96] for im in test.images])):
        np.testing.assert_array_equal(a, b)
