"""Attribution maps against ground truth: masks, NIH boxes, pointing game, mass inside, baselines."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
import torch

from cxrkit.explain import box_to_mask, centre_bias_map, mass_inside, pointing_game, random_map, read_bbox_list, resize_mask
from cxrkit.datasets import read_nih_box_file
from cxrkit.explain.truth import as_truth_mask, films_with_finding, truth_objects


def _mask(shape=(16, 16), rows=slice(4, 8), cols=slice(10, 14)):
    m = np.zeros(shape, bool)
    m[rows, cols] = True
    return m


def test_pointing_game_hand_made():
    mask = _mask()
    a = np.zeros((16, 16))
    a[5, 11] = 1.0
    assert pointing_game(a, mask) is True
    a[0, 0] = 2.0
    assert pointing_game(a, mask) is False
    # the maximum is 4 rows above the mask's top edge (row 4): hit only with tolerance >= 4
    b = np.zeros((16, 16))
    b[0, 12] = 1.0
    assert not pointing_game(b, mask, tolerance=3.5)
    assert pointing_game(b, mask, tolerance=4.0)
    assert pointing_game(torch.from_numpy(b)[None], mask, tolerance=4.0)  # tensors and (1, H, W) maps
    with pytest.raises(ValueError, match="empty"):
        pointing_game(b, np.zeros((16, 16), bool))


def test_mass_inside_hand_made():
    mask = _mask()
    a = np.zeros((16, 16))
    a[5, 11], a[0, 0], a[15, 15] = 3.0, 1.0, -5.0  # negative attribution is not mass
    assert mass_inside(a, mask) == pytest.approx(0.75)
    assert mass_inside(np.ones((16, 16)), mask) == pytest.approx(mask.mean())
    assert np.isnan(mass_inside(-np.ones((16, 16)), mask))


def test_masks_at_higher_resolution_are_resized():
    big = np.zeros((64, 64), bool)
    big[16:32, 40:56] = True  # = rows 4..8, cols 10..14 at 16x16
    small = resize_mask(big, (16, 16))
    assert np.array_equal(small, _mask())
    a = np.zeros((16, 16))
    a[5, 11] = 1.0
    assert pointing_game(a, big)
    # area > 0.5: a mask covering 3 of 4 high-res pixels of a cell keeps it, 2 of 4 does not
    m = np.zeros((4, 4), bool)
    m[0, 0] = m[0, 1] = m[1, 0] = True
    m[2, 2] = m[2, 3] = True
    assert np.array_equal(resize_mask(m, (2, 2)), np.array([[True, False], [False, False]]))
    # enlarging is nearest
    assert np.array_equal(resize_mask(np.array([[True, False]]), (2, 4)), np.array([[1, 1, 0, 0], [1, 1, 0, 0]], bool))
    # a tiny lesion does not vanish
    tiny = np.zeros((64, 64), bool)
    tiny[30, 30] = True
    assert resize_mask(tiny, (16, 16)).sum() == 1 and resize_mask(tiny, (16, 16))[7, 7]
    assert resize_mask(tiny, (16, 16), keep_nonempty=False).sum() == 0
    stack = resize_mask(np.stack([big, big]), (16, 16))
    assert stack.shape == (2, 16, 16) and stack.any(axis=0).sum() == 16


def test_box_to_mask_scaling():
    # an NIH box in 1024x1024 space → a 128x128 map: every coordinate divides by 8
    box = (256.0, 512.0, 128.0, 64.0)
    m = box_to_mask(box, (128, 128), (1024, 1024))
    rows, cols = np.nonzero(m)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (64, 71, 32, 47)
    assert m.sum() == 8 * 16
    # same box at the source resolution, then resized, gives the same mask: one code path
    full = box_to_mask(box, (1024, 1024))
    assert np.array_equal(resize_mask(full, (128, 128)), m)
    # non-square source: x scales by width, y by height
    m2 = box_to_mask((10, 20, 10, 20), (50, 50), (100, 200))
    rows, cols = np.nonzero(m2)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (10, 19, 3, 4)  # x: 2.5..5.0, pixel 2 half covered
    # half-covered edge pixels are not in (area > 0.5), mostly covered are
    m3 = box_to_mask((1.5, 1.5, 2.0, 2.0), (6, 6))
    assert m3.sum() == 1 and m3[2, 2]
    m4 = box_to_mask((0.9, 0.9, 2.2, 2.2), (6, 6))
    assert np.array_equal(np.argwhere(m4), np.argwhere(_mask((6, 6), slice(1, 3), slice(1, 3))))
    with pytest.raises(ValueError, match="w, h >= 0"):
        box_to_mask((0, 0, -1, 2), (6, 6))


def test_truth_objects_boxes_and_masks_share_one_path():
    boxes = [(0, 0, 4, 4), (8, 8, 4, 4)]
    objs = truth_objects(boxes, (16, 16))
    assert objs.shape == (2, 16, 16) and objs.sum() == 32
    union = as_truth_mask(boxes, (16, 16))
    from_mask = truth_objects(union, (16, 16))  # a single mask splits into its connected components
    assert from_mask.shape == (2, 16, 16)
    assert np.array_equal(from_mask.any(axis=0), union)
    assert np.array_equal(truth_objects(np.array(boxes, float), (16, 16)), objs)
    assert truth_objects(None, (16, 16)).shape == (0, 16, 16)
    assert not as_truth_mask(None, (8, 8)).any()


def test_read_bbox_list_nih_header(tmp_path):
    """Boxes are read by the datasets' one NIH reader: file-name stems as image ids, NIH's own finding aliases."""
    path = tmp_path / "BBox_List_2017.csv"
    path.write_text("Image Index,Finding Label,Bbox [x,y,w,h],,,,,\n00013118_008.png,Atelectasis,225.08,547.02,86.79,79.19,,,\n"
                    "00013118_009.png,Infiltrate,1,2,3,4,,,\n")
    df = read_bbox_list(path)
    assert list(df.columns) == ["image_id", "finding", "x", "y", "w", "h"]
    assert df["image_id"].tolist() == ["00013118_008", "00013118_009"]
    assert df["finding"].tolist() == ["Atelectasis", "Infiltration"]
    assert df.loc[0, "w"] == pytest.approx(86.79)
    pd.testing.assert_frame_equal(df, read_nih_box_file(path))
    m = box_to_mask(df.loc[0, ["x", "y", "w", "h"]].to_numpy(float), (128, 128), (1024, 1024))
    assert m.any() and truth_objects(df.iloc[:1], (128, 128), (1024, 1024)).shape == (1, 128, 128)
    pd.testing.assert_frame_equal(read_bbox_list(df), df)  # a box table passes through
    with pytest.raises(ValueError, match="lacks"):
        read_bbox_list(df.drop(columns="w"))


def test_films_are_chosen_by_their_truth_mask_in_table_order(tmp_path):
    masks = tmp_path / "truth" / "masks"
    masks.mkdir(parents=True)
    lesion = np.zeros((8, 8), bool)
    lesion[2:4, 2:4] = True
    for image_id, has in (("a", True), ("b", False), ("c", True), ("d", True)):
        np.savez(masks / f"{image_id}.npz", lung_lesion=lesion if has else np.zeros((8, 8), bool))
    rows = pd.DataFrame({"image_id": ["a", "b", "c", "d"]})
    found = films_with_finding(tmp_path, rows, "Lung Lesion", 2)
    assert [i for i, _ in found] == [0, 2] and all(np.array_equal(m, lesion) for _, m in found)
    assert [i for i, _ in films_with_finding(tmp_path, rows, "Lung Lesion")] == [0, 2, 3]
    assert films_with_finding(tmp_path, rows, "Pneumothorax") == []  # no mask of that finding anywhere


def test_baseline_maps():
    r1, r2 = random_map((8, 9), 0), random_map((8, 9), np.random.default_rng(0))
    assert r1.shape == (8, 9) and np.array_equal(r1, r2) and not np.array_equal(r1, random_map((8, 9), 1))
    c = centre_bias_map((9, 11))
    assert np.unravel_index(np.argmax(c), c.shape) == (4, 5)
    assert pointing_game(c, _mask((9, 11), slice(3, 6), slice(4, 7)))
    with pytest.raises(ValueError, match="shape"):
        random_map((8,), 0)
