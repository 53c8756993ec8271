"""synth-hwdb: GB2312 level-1 classes, stroke rendering, and a tiny set built through GNT files and the cache."""
import numpy as np
import pytest

from hwrlib.data.gnt import read_gnt
from hwrlib.data.hwdb import HWDBLoader, prepared
from hwrlib.data.synth_hwdb import (SynthParams, choose_classes, fetch_strokes, level1_chars, load_medians,
                                   strokes_dir, synth_dir)

TINY = {"num_classes": 5, "num_writers": 4, "seed": 0}


@pytest.fixture(scope="session")
def strokes():
    """The level-1 medians in the default data dir; fetched with npm once if `make data` has not done it."""
    fetch_strokes()
    return load_medians()


@pytest.fixture
def data(strokes, tmp_path):
    """A private data dir that shares the fetched stroke data: returns a function name -> data dir."""
    def make(name: str = "data"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "hanzi-writer-data").symlink_to(strokes_dir())
        return tmp_path / name
    return make


def test_level1_chars_are_gb2312_rows_b0_to_d7():
    chars = level1_chars()
    assert len(chars) == 3755 == len(set(chars))
    assert chars[0] == "啊" and chars[-1] == "座" and chars[0].encode("gb2312") == b"\xb0\xa1"
    codes = [c.encode("gb2312") for c in chars]
    assert codes == sorted(codes) and all(0xB0 <= b[0] <= 0xD7 for b in codes)


def test_choose_classes_skips_characters_without_strokes():
    medians = {c: [[[0, 0], [9, 9]]] for c in level1_chars()[:10]}
    del medians["阿"]
    chars, skipped = choose_classes(medians, 5)
    assert chars == ["啊", "埃", "挨", "哎", "唉"] and skipped == 1
    with pytest.raises(ValueError, match="only 9"):
        choose_classes(medians, 20)


def test_strokes_cover_level1_in_a_y_up_frame(strokes):
    assert len(strokes) == 3755  # none missing in hanzi-writer-data 2.0.1
    pts = np.array([p for c in level1_chars()[:50] for s in strokes[c] for p in s])
    assert pts.min() > -124 - 50 and pts.max() < 1024 + 50
    one = np.array(strokes["一"][0])  # one horizontal stroke
    assert np.ptp(one[:, 1]) < 0.2 * np.ptp(one[:, 0])
    top, bottom = (np.array(s)[:, 1].mean() for s in (strokes["三"][0], strokes["三"][-1]))
    assert top > bottom  # y points up: 三's first stroke is its top one


def test_tiny_synthetic_set_builds_through_gnt_and_cache(data):
    d = data()
    train, test = prepared("synth", data_dir=d, **TINY)
    p = SynthParams(**TINY)
    root = synth_dir(p, d)
    writers = p.split_writers()
    assert set(writers["train"]).isdisjoint(writers["test"]) and len(writers["test"]) == 1
    assert sorted(f.name for f in (root / "train").glob("*.gnt")) == [f"{w}-synth.gnt" for w in writers["train"]]
    assert train.dataset == "synth" and train.meta["params"]["num_classes"] == 5
    assert train.classes == level1_chars()[:5] and (len(train), len(test)) == (15, 5)
    assert sorted(np.unique(train.writers)) == writers["train"]
    gnt = read_gnt(root / "test" / f"{writers['test'][0]}-synth.gnt")
    assert [t for t, _ in gnt] == level1_chars()[:5]
    for i, (_, bitmap) in enumerate(gnt):
        np.testing.assert_array_equal(test.bitmap(i), bitmap)
        h, w = bitmap.shape
        assert 20 <= h <= 200 and 20 <= w <= 200 and bitmap.min() < 80 and bitmap.max() == 255
        assert bitmap[0].min() > 128 and bitmap[-1].min() > 128  # a background margin, ink inside
    x, y = next(iter(HWDBLoader(train, None, 15)))
    assert x.shape == (15, 1, 108, 108) and y.tolist() == train.labels.tolist()


def test_synthetic_set_is_deterministic_per_seed(data):
    a, _ = prepared("synth", data_dir=data("a"), **TINY)
    b, _ = prepared("synth", data_dir=data("b"), **TINY)
    c, _ = prepared("synth", data_dir=data("c"), **{**TINY, "seed": 1})
    assert np.array_equal(a.pixels, b.pixels) and np.array_equal(a.writers, b.writers)
    assert not np.array_equal(a.shapes, c.shapes)


def test_styles_differ_between_writers(data):
    train, _ = prepared("synth", data_dir=data(), **{**TINY, "num_writers": 6})
    heights = {w: train.shapes[train.writers == w, 0].mean() for w in np.unique(train.writers)}
    assert max(heights.values()) - min(heights.values()) > 5  # px: writers have their own size


def test_missing_synthetic_set_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="make synth-hwdb"):
        prepared("synth", data_dir=tmp_path, build=False, **TINY)
    with pytest.raises(FileNotFoundError, match="make data"):
        prepared("synth", data_dir=tmp_path, **TINY)  # no stroke data in an empty data dir
    with pytest.raises(ValueError, match="unknown dataset"):
        prepared("mnist")
