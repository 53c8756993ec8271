"""CASIA-HWDB path of paper 000: GNT files, the cache, the split and the 108x108 loader."""
import json
import struct
import warnings

import numpy as np
import pytest
import torch

from hwrlib.data import hwdb_cache
from hwrlib.data.gnt import GNTError, gnt_bytes, iter_gnt, read_gnt, write_gnt
from hwrlib.data.hwdb import (Augment, HWDBCache, HWDBLoader, build_cache, count_differences, prepared,
                              train_val_split)

TAGS = "啊阿埃挨哎唉"  # GB2312 level 1, code order B0A1 ...


def rand_samples(rng, n, tags=TAGS, lo=1, hi=140):
    return [(tags[int(rng.integers(len(tags)))],
             rng.integers(0, 256, (int(rng.integers(lo, hi)), int(rng.integers(lo, hi))), dtype=np.uint8))
            for _ in range(n)]


def record(tag_code: bytes, w: int, h: int, size: int | None = None, fill: int = 255) -> bytes:
    """A GNT record built by hand from the format, independent of write_gnt."""
    return struct.pack("<I", 10 + w * h if size is None else size) + tag_code + struct.pack("<HH", w, h) \
        + bytes([fill]) * (w * h)


# ---- GNT ----------------------------------------------------------------------------------------------------

def test_gnt_round_trip_gbk_tags_and_odd_sizes(tmp_path):
    rng = np.random.default_rng(0)
    samples = [("啊", np.zeros((1, 1), np.uint8)), ("丂", rng.integers(0, 256, (3, 301), dtype=np.uint8)),
               ("齄", rng.integers(0, 256, (257, 2), dtype=np.uint8))] + rand_samples(rng, 20)  # 丂: GBK only
    write_gnt(tmp_path / "w.gnt", samples)
    back = list(iter_gnt(tmp_path / "w.gnt"))
    assert [t for t, _, _ in back] == [t for t, _ in samples]
    for (_, a), (_, b, _) in zip(samples, back):
        np.testing.assert_array_equal(a, b)
    offsets = np.cumsum([0] + [10 + b.size for _, b in samples[:-1]])
    assert [o for _, _, o in back] == offsets.tolist()


def test_gnt_layout_matches_the_format(tmp_path):
    bitmap = np.arange(6, dtype=np.uint8).reshape(2, 3)  # H=2, W=3
    raw = gnt_bytes([("啊", bitmap)])
    assert raw == struct.pack("<I", 16) + b"\xb0\xa1" + struct.pack("<HH", 3, 2) + bytes(range(6))
    (tmp_path / "hand.gnt").write_bytes(record(b"\xb0\xa1", 4, 2, fill=7) + record(b"\xd7\xf9", 1, 3))
    (t1, b1), (t2, b2) = read_gnt(tmp_path / "hand.gnt")
    assert (t1, b1.shape, int(b1[0, 0])) == ("啊", (2, 4), 7) and (t2, b2.shape) == ("座", (3, 1))


def test_write_gnt_rejects_untaggable_and_bad_bitmaps(tmp_path):
    with pytest.raises(ValueError, match="2-byte"):
        write_gnt(tmp_path / "a.gnt", [("a", np.zeros((2, 2), np.uint8))])
    with pytest.raises(ValueError, match="uint8"):
        write_gnt(tmp_path / "a.gnt", [("啊", np.zeros((2, 2), np.float32))])
    assert not (tmp_path / "a.gnt").exists()


GOOD = record(b"\xb0\xa1", 5, 4)
BAD_CASES = {  # name -> (file bytes, offset of the bad record, message, good records readable with skip_bad)
    "truncated": (GOOD + GOOD[:-3], len(GOOD), "truncated record", 1),
    "truncated header": (GOOD + GOOD[:6], len(GOOD), "truncated record", 1),
    "size field": (GOOD + record(b"\xb0\xa1", 5, 4, size=99) + GOOD, len(GOOD), "size field 99 disagrees", 1),
    "undecodable tag": (GOOD + record(b"\xff\xff", 5, 4) + GOOD, len(GOOD), "undecodable tag code FF FF", 2),
    "ascii tag": (GOOD + record(b"ab", 2, 2) + GOOD, len(GOOD), "undecodable tag", 2),
    "empty file": (b"", 0, "empty file", 0),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_gnt_names_file_and_offset(tmp_path, case):
    data, offset, problem, good = BAD_CASES[case]
    path = tmp_path / "1001-c.gnt"
    path.write_bytes(data)
    with pytest.raises(GNTError, match=rf"1001-c\.gnt: byte offset {offset}: {problem}") as e:
        list(iter_gnt(path))
    assert e.value.offset == offset
    errors = []
    assert len(list(iter_gnt(path, skip_bad=True, errors=errors))) == good
    assert [e.offset for e in errors] == [offset]


# ---- cache --------------------------------------------------------------------------------------------------

@pytest.fixture
def gnt_tree(tmp_path):
    """Writers 1001-1003 in train/, 1004 in test/ (without 哎 and 唉); returns (root, samples per split)."""
    rng = np.random.default_rng(1)
    out = {"train": [], "test": []}
    for split, writers in {"train": [1001, 1002, 1003], "test": [1004]}.items():
        for w in writers:
            s = rand_samples(rng, 7, TAGS if split == "train" else TAGS[:4])
            write_gnt(tmp_path / "gnt" / split / f"{w}-c.gnt", s)
            out[split] += [(t, b, w) for t, b in s]
    return tmp_path, out


def build(root, **kw):
    kw.setdefault("expected", None)
    kw.setdefault("progress", False)
    return build_cache({s: root / "gnt" / s for s in ("train", "test")}, root / "cache", **kw)


def check_cache(cache_dir, samples):
    for split, ss in samples.items():
        c = HWDBCache(cache_dir, split)
        assert len(c) == len(ss) and c.labels.dtype == np.int64 and c.classes == list(TAGS)
        assert [c.classes[i] for i in c.labels] == [t for t, _, _ in ss]
        assert c.writers.tolist() == [w for _, _, w in ss]
        for i, (_, b, _) in enumerate(ss):
            np.testing.assert_array_equal(c.bitmap(i), b)


def test_cache_gives_back_bitmaps_labels_writers(gnt_tree):
    root, samples = gnt_tree
    out = build(root, meta={"dataset": "synth"})
    check_cache(out, samples)
    assert HWDBCache(out, "test").dataset == "synth" and HWDBCache(out, "train").num_classes == 6
    assert not (out / ".parts").exists()
    mtime = (out / "cache.json").stat().st_mtime_ns
    assert build(root) == out and (out / "cache.json").stat().st_mtime_ns == mtime  # built once


@pytest.mark.parametrize("step,crash_at,reparsed", [("convert_file", 3, 2), ("_assemble", 2, 0)])
def test_interrupted_build_resumes_without_partial_cache(gnt_tree, monkeypatch, step, crash_at, reparsed):
    """Killed while converting the 3rd of 4 files, or after assembling train: no cache; the rerun resumes."""
    root, samples = gnt_tree
    real, calls = getattr(hwdb_cache, step), []

    def crashing(*a, **k):
        calls.append(a[0])
        if len(calls) == crash_at:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(hwdb_cache, step, crashing)
    with pytest.raises(KeyboardInterrupt):
        build(root)
    assert not (root / "cache" / "cache.json").exists()
    with pytest.raises(FileNotFoundError, match="not a finished HWDB cache"):
        HWDBCache(root / "cache", "train")
    monkeypatch.undo()
    parsed = []
    real_iter = hwdb_cache.iter_gnt
    monkeypatch.setattr(hwdb_cache, "iter_gnt", lambda p, *a: parsed.append(p) or real_iter(p, *a))
    check_cache(build(root), samples)
    assert len(parsed) == reparsed  # finished files are not parsed again


def test_build_stops_at_bad_record_or_skips_and_counts(gnt_tree):
    root, samples = gnt_tree
    bad = root / "gnt" / "train" / "1002-c.gnt"
    bad.write_bytes(bad.read_bytes() + record(b"\xff\xff", 3, 3))
    with pytest.raises(GNTError, match="1002-c.gnt"):
        build(root)
    assert not (root / "cache" / "cache.json").exists()
    with pytest.warns(UserWarning, match="undecodable tag"):
        out = build(root, skip_bad=True)
    check_cache(out, samples)
    assert json.loads((out / "cache.json").read_text())["bad_records"] == 1


def test_expected_counts_reported_not_raised(gnt_tree):
    root, _ = gnt_tree
    with pytest.warns(UserWarning, match="classes: expected 3,755, found 6"):
        out = build(root, expected=hwdb_cache.HWDB11)
    info = json.loads((out / "cache.json").read_text())
    same = {"classes": 6, "train": 21, "test": 7, "train_writers": 3, "test_writers": 1}
    assert count_differences(info, same) == []
    assert count_differences(info, {**same, "test": 8}) == ["test: expected 8, found 7"]


def test_prepared_hwdb_finds_gnt_folders_or_says_how(tmp_path, monkeypatch):
    monkeypatch.delenv("HWR_HWDB_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match=r"HWDB1\.1trn_gnt.*HWR_HWDB_DIR.*make hwdb-cache"):
        prepared("hwdb", data_dir=tmp_path)
    rng = np.random.default_rng(2)
    for d, w in (("HWDB1.1trn_gnt", 1001), ("HWDB1.1tst_gnt", 1241)):
        write_gnt(tmp_path / "casia" / d / f"{w}-c.gnt", rand_samples(rng, 5))
    monkeypatch.setenv("HWR_HWDB_DIR", str(tmp_path / "casia"))
    with pytest.warns(UserWarning, match="expected counts"):
        train, test = prepared("hwdb", data_dir=tmp_path)
    assert (len(train), len(test), train.dataset, test.writers[0]) == (5, 5, "hwdb", 1241)


def test_train_val_split_is_a_seeded_10_percent_partition(gnt_tree):
    c = HWDBCache(build(gnt_tree[0]), "train")
    tr, va = train_val_split(c, 0.1, seed=3)
    assert len(va) == round(0.1 * len(c)) and np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(len(c)))
    assert np.array_equal(train_val_split(c, 0.1, 3)[1], va)
    assert any(not np.array_equal(train_val_split(c, 0.1, s)[1], va) for s in range(4, 8))


# ---- loader -------------------------------------------------------------------------------------------------

@pytest.fixture
def loader_cache(tmp_path):
    """Bitmaps of odd sizes, two of them larger than 108 (one wide, one tall)."""
    rng = np.random.default_rng(4)
    s = rand_samples(rng, 30, lo=1, hi=108) + [("啊", np.full((50, 216), 0, np.uint8)),
                                                ("阿", rng.integers(0, 256, (120, 30), dtype=np.uint8))]
    write_gnt(tmp_path / "gnt" / "train" / "1001-c.gnt", s)
    write_gnt(tmp_path / "gnt" / "test" / "1002-c.gnt", s[:3])
    return HWDBCache(build(tmp_path), "train")


def reference_canvas(bitmap, size=108):
    """Per-sample reference: centred on zeros, ink = (255 - pixel) / 255."""
    h, w = bitmap.shape
    out = np.zeros((size, size), np.float32)
    top, left = (size - h) // 2, (size - w) // 2
    out[top:top + h, left:left + w] = (255 - bitmap.astype(np.float32)) / 255
    return out


def test_loader_centres_on_background_and_counts_downscaled(loader_cache):
    c = loader_cache
    loader = HWDBLoader(c, None, batch_size=8)
    assert loader.num_downscaled == 2 and len(loader) == 4
    xs, ys = zip(*loader)
    x, y = torch.cat(xs), torch.cat(ys)
    assert x.shape == (32, 1, 108, 108) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert y.tolist() == c.labels.tolist()
    for i in range(30):
        np.testing.assert_allclose(x[i, 0].numpy(), reference_canvas(c.bitmap(i)), atol=1e-6)
    wide = x[30, 0]  # 216x50 all ink -> 108x25, centred
    rows = torch.nonzero(wide.sum(1)).squeeze(1)
    assert wide.max() == 1 and (rows.min().item(), rows.max().item()) == (41, 65) and wide.sum() == 108 * 25
    tall = torch.nonzero(x[31, 0].sum(0) > 0).squeeze(1)  # 30x120 -> 27x108
    assert (tall.min().item(), tall.max().item()) == (40, 66) and (x[31, 0].sum(1) > 0).all()


def batches(loader, epoch=0):
    loader.set_epoch(epoch)
    return [(x.clone(), y.clone()) for x, y in loader]


def same(a, b):
    return all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_loader_is_deterministic_per_seed_and_epoch(loader_cache):
    def make(seed):
        return HWDBLoader(loader_cache, np.arange(2, 30), 8, shuffle=True, seed=seed, augment=Augment.paper())
    a = batches(make(0))
    assert same(a, batches(make(0))) and len(a) == 4
    assert not same(a, batches(make(1))) and not same(a, batches(make(0), epoch=1))
    assert sorted(torch.cat([y for _, y in a]).tolist()) == sorted(loader_cache.labels[2:30].tolist())


@pytest.mark.parametrize("aug", [Augment(flip=True), Augment(scale=(0.5, 2.0)), Augment(pca_noise_p=1.0),
                                 Augment.paper()], ids=["flip", "scale", "pca", "paper"])
def test_augmentation_changes_batches_only_when_enabled(loader_cache, aug):
    plain = batches(HWDBLoader(loader_cache, None, 16, seed=5))
    assert same(plain, batches(HWDBLoader(loader_cache, None, 16, seed=5, augment=Augment.none())))
    augmented = batches(HWDBLoader(loader_cache, None, 16, seed=5, augment=aug))
    assert not same(plain, augmented)
    for (x0, y0), (x1, y1) in zip(plain, augmented):
        assert torch.equal(y0, y1) and x1.shape == x0.shape and x1.min() >= 0 and x1.max() <= 1
        if aug == Augment(flip=True):  # each sample either unchanged or mirrored
            assert all(torch.equal(a, b) or torch.equal(a, b.flip(-1)) for a, b in zip(x1, x0))


def test_augment_settings():
    assert Augment.paper() == Augment(True, (0.5, 2.0), 0.3, (0.01, 0.1)) and not Augment.none().enabled
    with pytest.raises(ValueError, match="scale"):
        Augment(scale=(2.0, 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Augment(pca_noise_p=0.3)


def test_expand_keeps_the_originals_and_adds_augmented_copies():
    from hwrlib.data.hwdb_loader import Augment, expand_batch
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 20, 20) * (torch.arange(20) < 12).float()  # ink on the left: a mirror differs
    copy = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])
    out = expand_batch(x, copy, Augment(flip=True, scale=(0.5, 2.0)), g)
    assert torch.equal(out[copy == 0], x[copy == 0])  # the originals, untouched
    assert torch.equal(out[copy == 1], x[copy == 1].flip(-1))  # the 1:2 mirror copies
    assert not torch.equal(out[copy >= 2], x[copy >= 2])  # zoomed
    noisy = expand_batch(x, copy, Augment(pca_noise_p=1.0), torch.Generator().manual_seed(0))
    assert torch.equal(noisy[copy == 0], x[copy == 0]) and not torch.equal(noisy[copy > 0], x[copy > 0])


def test_an_expanded_epoch_holds_every_sample_once_as_stored_and_as_its_copies(loader_cache):
    idx = np.arange(2, 30)
    plain = torch.cat([x for x, _ in HWDBLoader(loader_cache, idx, 28)])
    loader = HWDBLoader(loader_cache, idx, 8, shuffle=True, seed=3, augment=Augment(flip=True), expand=3)
    assert len(loader) == -(-3 * 28 // 8)
    xs, ys = zip(*batches(loader))
    x, y = torch.cat(xs), torch.cat(ys)
    assert len(y) == 3 * 28 and sorted(y.tolist()) == sorted(loader_cache.labels[idx].tolist() * 3)
    for i in range(28):  # each original appears as stored, and its mirror appears too
        assert any(torch.equal(plain[i], row) for row in x) and any(torch.equal(plain[i].flip(-1), row) for row in x)
