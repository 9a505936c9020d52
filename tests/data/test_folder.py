"""image_folder: faithful conversion of every image mode, the channel vote, data.limit and the report.

Every file is a real image written with PIL into tmp_path.
"""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganops.core.params import DataParams
from ganops.data.sources import DataSourceError, load_source


def _load(root: Path, seed: int = 0, **kw):
    p = DataParams(**{"dataset": "image_folder", "root": str(root), "download": False, **kw})
    return load_source(p, root.parent, seed=seed)


def _grey_file(path: Path, value: int = 100) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (16, 16), value).save(path)


def test_16_bit_png_keeps_its_grey_levels(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    levels = (np.arange(64 * 64) % 49).reshape(64, 64) * 1337  # 49 levels spread over 0..64176
    Image.fromarray(levels.astype(np.uint16)).save(root / "deep.png")
    with Image.open(root / "deep.png") as im:
        assert im.mode in ("I;16", "I")  # really a 16-bit file

    raw = _load(root, resolution=64)
    got = raw.images[0, 0].astype(int)
    assert raw.images.shape == (1, 1, 64, 64)
    assert len(np.unique(got)) >= 40  # PIL's convert("L") leaves {0, 255}
    assert np.abs(got - (levels >> 8)).max() <= 1
    assert sum(raw.report["conversions"].values()) == 1 and next(iter(raw.report["conversions"])).endswith("->L")


@pytest.mark.parametrize("mode, values, expected", [
    ("I", [-5, 0, 257 * 128, 70000], [0, 0, 128, 255]),     # 32-bit int: read as 16-bit, clipped to 0..65535
    ("F", [-0.5, 0.0, 0.5, 2.0], [0, 0, 128, 255]),         # float: 0..1 intensities, clipped
])
def test_int_and_float_tiffs_are_scaled_and_clipped(tmp_path, mode, values, expected):
    root = tmp_path / "imgs"
    root.mkdir()
    row = np.repeat(np.array(values, np.int32 if mode == "I" else np.float32), 4)  # 16 pixels: 4 per value
    Image.fromarray(np.repeat(row[None], 16, axis=0), mode).save(root / "x.tif")
    with Image.open(root / "x.tif") as im:
        assert im.mode == mode
    raw = _load(root, resolution=16)  # 16×16: no resizing, every value exactly
    assert raw.images[0, 0, 0, ::4].tolist() == expected
    assert raw.report["conversions"] == {f"{mode}->L": 1}


def test_rgba_file_among_grey_files_joins_them_as_grey_with_a_warning(tmp_path, caplog):
    root = tmp_path / "imgs"
    for i in range(3):
        _grey_file(root / f"g{i}.png")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[:, :8] = (255, 0, 0, 255)      # opaque red
    rgba[:, 8:] = (0, 0, 0, 0)          # fully transparent, black underneath
    Image.fromarray(rgba, "RGBA").save(root / "z_rgba.png")

    with caplog.at_level(logging.INFO, logger="ganops.data.folder"):
        raw = _load(root, resolution=16)
    assert raw.images.shape == (4, 1, 16, 16)  # the majority is grey: not all RGB because of one file
    assert raw.report["conversions"] == {"RGBA->L": 1}
    assert raw.report["channels_by_majority"] == {"grey": 3, "colour": 1}
    converted = raw.images[raw.sources.index("z_rgba.png"), 0]
    assert converted[0, 0] == 76 and converted[0, -1] == 255  # red's luma; transparent → white, not black
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "colour files to grey" in r.message]
    assert len(warnings) == 1 and "data.channels=3" in warnings[0].message


def test_grey_files_join_a_colour_majority(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    _grey_file(root / "a.png", 50)
    for i in range(2):
        Image.new("RGB", (16, 16), (10, 200, 30)).save(root / f"c{i}.jpg", quality=95)
    raw = _load(root, resolution=16)
    assert raw.images.shape == (3, 3, 16, 16)
    assert raw.report["conversions"] == {"L->RGB": 1}
    assert (raw.images[0] == 50).all()  # the grey file repeated over three channels


def test_palette_with_transparency_composites_over_white(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    im = Image.new("P", (16, 16), 0)
    im.putpalette([0, 0, 0, 200, 30, 40] + [0, 0, 0] * 254)
    im.paste(1, (0, 0, 16, 8))           # top half colour 1, bottom half colour 0 (transparent)
    im.save(root / "pal.png", transparency=0)

    raw = _load(root, resolution=16)
    assert raw.images.shape == (1, 3, 16, 16)
    assert raw.images[0, :, 0, 0].tolist() == [200, 30, 40]
    assert raw.images[0, :, -1, 0].tolist() == [255, 255, 255]  # convert("RGB") would give black
    assert raw.report["conversions"] == {"P->RGB": 1}


def test_palette_of_greys_is_a_grey_image(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    im = Image.new("P", (16, 16), 1)
    im.putpalette([0, 0, 0, 90, 90, 90, 255, 255, 255])
    im.save(root / "greys.png")
    raw = _load(root, resolution=16)
    assert raw.images.shape == (1, 1, 16, 16) and (raw.images == 90).all()
    assert raw.report["channels_by_majority"] == {"grey": 1, "colour": 0}


def _classes(root: Path, sizes: dict[str, int]) -> None:
    for name, n in sizes.items():
        for i in range(n):
            _grey_file(root / name / f"{i:03d}.png", (7 * i) % 256)


def test_limit_is_stratified_across_subfolder_classes(tmp_path):
    root = tmp_path / "imgs"
    _classes(root, {"a": 30, "b": 10, "c": 20})
    raw = _load(root, seed=0, limit=12, resolution=16)
    assert len(raw) == 12 and raw.class_names == ["a", "b", "c"]
    assert np.bincount(raw.labels).tolist() == [6, 2, 4]  # the first 12 files would all be class a
    assert raw.sources == sorted(raw.sources)  # kept in their original order
    assert _load(root, seed=0, limit=12, resolution=16).sources == raw.sources
    assert _load(root, seed=1, limit=12, resolution=16).sources != raw.sources


def test_limit_samples_files_before_decoding_them(tmp_path):
    """A broken file that the sample leaves out is never read, so it cannot fail the load."""
    root = tmp_path / "imgs"
    _classes(root, {"a": 10, "b": 10})
    (root / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    outcomes = []
    for seed in range(6):
        try:
            raw = _load(root, seed=seed, limit=4, resolution=16)
            assert len(raw) == 4 and "a/broken.png" not in raw.sources
            outcomes.append("ok")
        except DataSourceError as e:
            assert "broken.png" in str(e)  # chosen by this seed: named, not dropped silently
            outcomes.append("broken chosen")
    assert "ok" in outcomes


def test_non_image_files_are_named_in_the_dataset_summary(tmp_path):
    from ganops.core.params import load
    from ganops.stages import run_stage

    root = tmp_path / "imgs"
    for name in ("cats", "dogs"):
        for i in range(3):
            _grey_file(root / name / f"{i}.png", 60 * i)
    (root / "README.txt").write_text("about the data")
    (root / "dogs" / "labels.csv").write_text("0,1\n")
    p = load(None, ["data.dataset=image_folder", f"data.root={root}", "data.resolution=16",
                    "tracking.enabled=false", "device=cpu"])
    result = run_stage("dataset", p, tmp_path)
    report = json.loads((result.path / "summary.json").read_text())["source_report"]
    assert report["ignored_non_image_files"] == {"count": 2, "files": ["README.txt", "dogs/labels.csv"]}
    assert report["channels_by_majority"] == {"grey": 6, "colour": 0}


def test_a_three_image_folder_is_built_with_its_warnings(tmp_path, caplog):
    from ganops.core.params import load
    from ganops.stages import run_stage

    root = tmp_path / "imgs"
    for i in range(3):
        _grey_file(root / f"{i}.png", 60 * i)
    p = load(None, ["data.dataset=image_folder", f"data.root={root}", "data.resolution=16",
                    "tracking.enabled=false", "device=cpu"])
    with caplog.at_level(logging.WARNING, logger="ganops.data.store"):
        result = run_stage("dataset", p, tmp_path)
    summary = json.loads((result.path / "summary.json").read_text())
    assert summary["metrics"]["n_holdout"] == 0
    said = summary["warnings"]
    assert len(said) == 2 and said[0].startswith("only 3 images") and "data.holdout=0.1 of 3 images holds none out" in said[1]
    assert all(w in caplog.text for w in said)
    for i in range(3, 120):                      # enough images: no warning, and no warnings key at all
        _grey_file(root / f"{i}.png", i)
    assert "warnings" not in json.loads((run_stage("dataset", p, tmp_path).path / "summary.json").read_text())


def test_instances_of_another_dataset_take_the_training_classes_by_name(tmp_path):
    """`ganops sample --instances FOLDER` on a class-conditional IC-GAN: a class subfolder 7/ is the training's
    class "7" wherever it sorts; a class the training lacks, or a dataset without names, has none."""
    from ganops.commands.sample import _in_training_labels, load_instances
    from ganops.core import artifacts as A
    from ganops.core import params as P

    p = P.load(None, ["data.dataset=digits"])
    summary = A.dataset_dir(tmp_path, p) / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"class_names": [str(d) for d in range(10)]}))
    folder = tmp_path / "mine"
    for name in ("3", "7", "cat"):
        _grey_file(folder / name / "a.png")
    raw = load_instances(str(folder), p, tmp_path, channels=1, resolution=16)
    assert raw.sources == ["3/a.png", "7/a.png", "cat/a.png"] and raw.labels.tolist() == [0, 1, 2]
    assert _in_training_labels(raw, str(folder), p, tmp_path).tolist() == [3, 7, -1]
    summary.write_text(json.dumps({"class_names": None}))
    assert _in_training_labels(raw, str(folder), p, tmp_path).tolist() == [-1, -1, -1]


def test_a_corrupt_instance_file_is_named_with_the_flag_that_skips_it(tmp_path):
    """`--instances FOLDER`: the folder's own error, worded for sample's flags (data.skip_corrupt would change
    the generator's parameters and send the user off to retrain)."""
    from ganops.commands.sample import SampleError, load_instances
    from ganops.core import params as P

    p = P.load(None)
    folder = tmp_path / "mine"
    _grey_file(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(SampleError) as e:
        load_instances(str(folder), p, tmp_path, channels=1, resolution=16)
    assert "b.png" in str(e.value) and "pass --skip-corrupt" in str(e.value) and "data.skip_corrupt" not in str(e.value)
    raw = load_instances(str(folder), p, tmp_path, channels=1, resolution=16, skip_corrupt=True)
    assert raw.sources == ["a.png"] and raw.images.shape == (1, 1, 16, 16)


def test_the_listing_keeps_the_order_of_path_components(tmp_path):
    """Files are listed as strings (a million Path objects cost a gigabyte) in the order Paths sort in: by
    component, so cat/ comes before cat-2/ and cat.x/ although '-' and '.' sort before '/'; hidden files and
    folders and non-images are left out as before."""
    from ganops.data.folder import _scan, _scan_names

    root = tmp_path / "imgs"
    for rel in ("cat/1.png", "cat-2/1.png", "cat.x/2.png", "cat/sub/3.PNG", "cat 3/4.jpg", "dog/.hidden.png",
                ".cache/5.png", "z.png"):
        _grey_file(root / rel)
    (root / "notes.txt").write_text("not an image")
    names, ignored = _scan_names(root)
    paths, other = _scan(root)
    assert names == [p.relative_to(root).as_posix() for p in paths]
    assert names[:3] == ["cat/1.png", "cat/sub/3.PNG", "cat 3/4.jpg"] and ignored == ["notes.txt"]
    assert ignored == [p.relative_to(root).as_posix() for p in other]


def test_a_file_name_that_is_not_utf8_is_read_and_named_as_the_system_gives_it(tmp_path):
    """The listing holds names as bytes (a million files in tens of MB): a Latin-1 name, which Linux allows and
    Python gives as a str with surrogate escapes, must come back as that same str and open."""
    import os

    from ganops.data.folder import _scan_names

    root = tmp_path / "imgs"
    _grey_file(root / "b" / "plain.png", 50)
    odd = os.fsdecode(b"caf\xe9.png")                       # not valid UTF-8
    _grey_file(root / "a" / odd, 200)
    names, _ = _scan_names(root)
    assert list(names) == [f"a/{odd}", "b/plain.png"]
    raw = load_source(DataParams(dataset="image_folder", root=str(root), resolution=16, channels=1), tmp_path)
    assert raw.sources == [f"a/{odd}", "b/plain.png"] and raw.class_names == ["a", "b"]
    assert raw.images[0].mean() == 200 and list(raw.labels) == [0, 1]
