"""The notebook 06 localization explorer: the pure view function, the figure, and the widget wiring."""
from __future__ import annotations

import numpy as np
import pytest

from cxrkit.widgets import CSS_CLASSES, ExplorerState, LocalizationExplorer, explorer_figure, explorer_svg, explorer_view

H = 64


def _blobs(a=1.0, b=0.8):
    yy, xx = np.mgrid[:H, :H]
    return a * np.exp(-((yy - 16) ** 2 + (xx - 16) ** 2) / 20) + b * np.exp(-((yy - 46) ** 2 + (xx - 48) ** 2) / 20)


def _data():
    truth = np.zeros((H, H), bool)
    truth[10:23, 10:23] = True  # around the first blob only
    maps = {"ig": np.stack([_blobs(), _blobs(0.3, 1.0)]), "flat": np.zeros((2, H, H))}
    return maps, [truth, None]


def test_view_counts_hits_and_false_regions_in_film_pixels():
    maps, truths = _data()
    before = {k: v.copy() for k, v in maps.items()}
    view = explorer_view(ExplorerState(0, "ig", 0.5), maps, truths, (2 * H, 2 * H))
    assert (view.n_regions, view.n_hits, view.n_false, view.n_objects, view.n_found) == (2, 1, 1, 1, 1)
    hit = view.shapes[view.shapes.hit].iloc[0]
    assert hit.cx == pytest.approx(2 * 16 + 0.5, abs=1) and hit.cy == pytest.approx(2 * 16 + 0.5, abs=1)
    false = view.shapes[~view.shapes.hit].iloc[0]
    assert false.cx == pytest.approx(2 * 48 + 0.5, abs=1.5)
    assert "2 regions, 1 hits, 1 false" in view.summary
    for k in maps:
        assert np.array_equal(maps[k], before[k])  # pure: inputs untouched


def test_view_follows_the_threshold_and_clustering():
    maps, truths = _data()
    low = explorer_view(ExplorerState(0, "ig", 0.5), maps, truths, (H, H))
    high = explorer_view(ExplorerState(0, "ig", 0.9), maps, truths, (H, H))
    assert (low.n_regions, high.n_regions) == (2, 1)  # the weaker blob drops out
    assert high.shapes.rx.iloc[0] < low.shapes[low.shapes.hit].rx.iloc[0]
    far = explorer_view(ExplorerState(0, "ig", 0.3, "single_linkage"), maps, truths, (H, H), distance=60.0)
    assert far.n_regions == 1  # a huge linkage distance merges both blobs
    comps = explorer_view(ExplorerState(0, "ig", 0.3, "components"), maps, truths, (H, H), distance=60.0)
    assert comps.n_regions == 2  # components ignore the distance


def test_view_without_truth_and_without_survivors():
    maps, truths = _data()
    view = explorer_view(ExplorerState(1, "ig", 0.2), maps, truths, (H, H))  # the 0.3 blob survives 0.2
    assert view.n_hits == 0 and view.n_false == view.n_regions == 2 and view.n_objects == 0
    empty = explorer_view(ExplorerState(0, "flat", 0.5), maps, truths, (H, H))
    assert empty.n_regions == 0 and len(empty.shapes) == 0 and empty.n_found == 0


def test_view_errors_name_the_bad_value():
    maps, truths = _data()
    with pytest.raises(ValueError, match="'gradcam'"):
        explorer_view(ExplorerState(0, "gradcam", 0.5), maps, truths, (H, H))
    with pytest.raises(ValueError, match="film 5"):
        explorer_view(ExplorerState(5, "ig", 0.5), maps, truths, (H, H))
    with pytest.raises(ValueError, match="'kmeans'"):
        explorer_view(ExplorerState(0, "ig", 0.5, "kmeans"), maps, truths, (H, H))
    with pytest.raises(ValueError, match="threshold="):
        explorer_view(ExplorerState(0, "ig", 0.5), maps, truths, (H, H), threshold=0.2)


def test_figure_draws_one_shape_per_region_coloured_by_hit():
    maps, truths = _data()
    view = explorer_view(ExplorerState(0, "ig", 0.5), maps, truths, (H, H))
    fig = explorer_figure(np.zeros((H, H)), maps["ig"][0], view, truths[0])
    assert len(fig.layout.shapes) == 2
    assert sorted(s.line.color for s in fig.layout.shapes) == ["lime", "red"]
    assert any(t.type == "contour" for t in fig.data)


def test_svg_draws_one_element_per_region_with_its_geometry():
    maps, truths = _data()
    view = explorer_view(ExplorerState(0, "ig", 0.5), maps, truths, (2 * H, 2 * H))
    svg = explorer_svg(np.zeros((2 * H, 2 * H)), maps["ig"][0], view, np.kron(truths[0], np.ones((2, 2), bool)))
    assert svg.count('class="cxrkit-region cxrkit-hit"') == 1 and svg.count('class="cxrkit-region cxrkit-false"') == 1
    assert svg.count("<circle") == 2 and "data:image/png;base64," in svg
    hit = view.shapes[view.shapes.hit].iloc[0]
    assert f'data-cx="{hit.cx:.1f}" data-cy="{hit.cy:.1f}" data-r="{hit.rx:.1f}"' in svg
    boxes = explorer_view(ExplorerState(0, "ig", 0.5), maps, truths, (H, H), shape="box")
    assert explorer_svg(np.zeros((H, H)), maps["ig"][0], boxes).count("<rect") == 2


def test_widget_redraws_when_the_slider_moves():
    pytest.importorskip("ipywidgets")
    maps, truths = _data()
    ex = LocalizationExplorer(np.zeros((2, H, H)), maps, truths, film_labels=["a", "b"], threshold=0.5)
    assert CSS_CLASSES["container"] in ex.widget._dom_classes
    assert CSS_CLASSES["threshold"] in ex.threshold._dom_classes and ex.threshold.description == "threshold"
    assert ex.film.description == "film" and ex.method.description == "method"
    assert ex.clustering.description == "clustering"
    assert '<span class="cxrkit-n-regions">2</span>' in ex.counts.value
    assert ex.figure.value.count("cxrkit-region ") == 2
    ex.threshold.value = 0.9
    assert ex.view.n_regions == 1 and '<span class="cxrkit-n-regions">1</span>' in ex.counts.value
    assert ex.figure.value.count("cxrkit-region ") == 1
    ex.film.value = 1
    assert ex.view.state.film == 1 and ex.view.n_hits == 0
    with pytest.raises(ValueError, match="3 maps for 2 films"):
        LocalizationExplorer(np.zeros((2, H, H)), {"ig": np.zeros((3, H, H))})
