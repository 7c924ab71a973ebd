"""Overlay figures: one panel per film × method, regions as shapes, the truth as an outline; all drawn as small PNGs."""
from __future__ import annotations

import numpy as np
import pytest
import plotly.graph_objects as go

from cxrkit.explain import localize, overlay_figure


def _case():
    yy, xx = np.mgrid[:32, :32]
    attr = np.exp(-((yy - 10) ** 2 + (xx - 20) ** 2) / 18.0) + 0.6 * np.exp(-((yy - 24) ** 2 + (xx - 6) ** 2) / 18.0)
    image = np.kron(np.random.default_rng(0).random((32, 32)), np.ones((2, 2)))  # the film at 64x64
    truth = np.zeros((64, 64), bool)
    truth[14:26, 34:46] = True
    return image, attr, truth


def test_overlay_single_film():
    image, attr, truth = _case()
    regions = localize(attr, threshold=0.5, padding=1.0)
    assert len(regions) == 2
    fig = overlay_figure(image, {"ig": attr, "gradient": -attr}, regions={"ig": regions}, truth_mask=truth)
    assert isinstance(fig, go.Figure)
    assert [a.text for a in fig.layout.annotations] == ["film", "ig", "gradient"]
    assert len(fig.layout.shapes) == 2 and all(s.type == "circle" for s in fig.layout.shapes)
    outlines = [t for t in fig.data if isinstance(t, go.Image) and t.name == "truth"]
    assert len(outlines) == 3  # the truth outline on every panel
    overlays = [t for t in fig.data if isinstance(t, go.Image) and t.name in ("ig", "gradient")]
    assert [o.dx for o in overlays] == [2.0, 2.0]  # the 32x32 map stretched over the 64x64 film
    assert all(t.type == "image" and t.source.startswith("data:image/png;base64,") for t in fig.data)
    # shapes are in film pixels: the strong blob's centre (20, 10) lands at (40.5, 20.5)
    s = fig.layout.shapes[0]
    assert (s.x0 + s.x1) / 2 == pytest.approx(40.5, abs=1.5) and (s.y0 + s.y1) / 2 == pytest.approx(20.5, abs=1.5)


def test_overlay_film_grid_with_boxes():
    image, attr, truth = _case()
    boxes = localize(attr, threshold=0.5, shape="box")
    fig = overlay_figure(np.stack([image, image]), {"ig": np.stack([attr, attr])}, regions=[boxes, None], truth_mask=[truth, None])
    assert len(fig.layout.annotations) == 4
    assert len(fig.layout.shapes) == len(boxes) and all(s.type == "rect" for s in fig.layout.shapes)
    with pytest.raises(ValueError, match="given once per film"):
        overlay_figure(np.stack([image, image]), {"ig": np.stack([attr, attr])}, regions=boxes)
    with pytest.raises(ValueError, match="'ig'"):
        overlay_figure(np.stack([image, image]), {"ig": attr})


def test_method_film_explorer_slider_shows_one_film_at_a_time():
    from cxrkit.explain import method_film_explorer

    rng = np.random.default_rng(0)
    films = rng.random((3, 32, 32))
    maps = {"a": rng.random((3, 16, 16)), "b": rng.standard_normal((3, 32, 32))}
    truth = np.zeros((32, 32), bool)
    truth[4:10, 4:10] = True
    fig = method_film_explorer(films, maps, [truth, None, truth], film_labels=["x", "y", "z"])
    per_film = [3 + 2 + 3, 3 + 2, 3 + 2 + 3]  # the film in 3 panels + 2 overlays (+ a truth contour per panel)
    assert len(fig.data) == sum(per_film)
    steps = fig.layout.sliders[0].steps
    assert [s.label for s in steps] == ["x", "y", "z"]
    for i, step in enumerate(steps):
        visible = np.asarray(step.args[0]["visible"])
        start = sum(per_film[:i])
        assert visible.sum() == per_film[i] and visible[start:start + per_film[i]].all()
    assert [bool(t.visible) for t in fig.data] == list(np.asarray(steps[0].args[0]["visible"]))
    overlays = fig.layout.updatemenus[0].buttons[0].args[1]
    assert all(fig.data[j].type == "image" and fig.data[j].name in maps for j in overlays) and len(overlays) == 6
    with pytest.raises(ValueError, match="map 'a'"):
        method_film_explorer(films, {"a": rng.random((2, 16, 16))})


def _decode(uri: str) -> np.ndarray:
    import base64
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    return np.asarray(image.convert("RGB") if image.mode == "P" else image)


def test_the_pngs_hold_the_film_the_coloured_map_and_the_outline():
    from cxrkit.explain.raster import colour_table

    image, attr, truth = _case()
    fig = overlay_figure(image, {"ig": attr}, truth_mask=truth)
    film, edge, _, overlay, _ = fig.data  # film and outline, then the map's panel: film, map, outline
    grey = _decode(film.source)
    assert grey.shape == image.shape and grey.dtype == np.uint8
    expected = np.round(255 * (image - image.min()) / (image.max() - image.min()))
    assert np.array_equal(grey, expected.astype(np.uint8))  # min–max, as the grey heatmap drew it
    coloured = _decode(overlay.source)
    assert coloured.shape == (*attr.shape, 3)
    peak = np.unravel_index(np.argmax(attr), attr.shape)
    assert tuple(coloured[peak]) == tuple(colour_table("Hot")[255])  # the map's maximum gets the top colour
    edge = _decode(edge.source)
    assert edge.shape == (64, 64, 4) and (edge[..., 3] > 0).sum() == 44  # a 12x12 square's inner edge
    assert not (edge[..., 3] > 0)[15:25, 35:45].any()  # the inside stays transparent


def test_a_twenty_film_explorer_of_class_size_stays_small():
    """Notebook 05's explorer (20 films of 128 px, 6 maps each) was 70 MB as heatmaps; as PNGs it is a few MB."""
    from cxrkit.explain import method_film_explorer

    rng = np.random.default_rng(0)
    films = rng.random((20, 128, 128))
    maps = {f"m{k}": rng.standard_normal((20, 128, 128)) for k in range(6)}
    truth = np.zeros((128, 128), bool)
    truth[40:70, 30:60] = True
    fig = method_film_explorer(films, maps, [truth] * 20)
    size = len(fig.to_json())
    assert size < 8_000_000, f"{size / 1e6:.1f} MB"  # white noise: the worst case for PNG; real maps compress better
