"""A gallery of the synthetic cohort: one film per finding with its ground-truth outline (notebook 01, data prep)."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pydicom
from PIL import Image
from plotly.subplots import make_subplots
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from scipy import ndimage

from cxrkit.ground_truth import synthetic_truth_masks
from cxrkit.labels import RENDERED_FINDINGS, label_slug


def display_array(path: str | Path) -> np.ndarray:
    """Read a DICOM film and return its display image in [0, 1]: modality LUT, VOI, MONOCHROME1 inversion (notebook 01)."""
    ds = pydicom.dcmread(path)
    arr = apply_modality_lut(ds.pixel_array, ds)
    if "RescaleSlope" in ds and float(ds.RescaleSlope).is_integer() and float(ds.get("RescaleIntercept", 0)).is_integer():
        arr = np.rint(arr).astype(np.int32)
    out = apply_voi_lut(arr, ds, prefer_lut=True).astype(np.float64)
    if "VOILUTSequence" in ds and "WindowCenter" not in ds:
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = 0.0, float(2 ** int(ds.BitsStored) - 1)
    out = np.clip((out - lo) / (hi - lo), 0.0, 1.0)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 1.0 - out
    return out


def _mask_area(root: Path, dicom_id: str, name: str) -> int:
    mask = synthetic_truth_masks(root, dicom_id).get(label_slug(name))
    return 0 if mask is None else int(mask.sum())


def _pick_examples(root: Path, findings: tuple[str, ...]) -> list[tuple[str, pd.Series]]:
    """Per finding, the film with the fewest other findings and, among those, the largest (most visible) mask."""
    studies = pd.read_csv(root / "truth" / "studies.csv")
    images = pd.read_csv(root / "truth" / "images.csv")
    table = images.merge(studies, on=["subject_id", "study_id", "view", "site"])
    picks = []
    for name in findings:
        rows = table[table[name] == 1]
        if rows.empty:
            continue
        others = rows[[f for f in RENDERED_FINDINGS if f != name]].sum(axis=1)
        rows = rows.assign(_others=others).sort_values(["_others", "dicom_id"]).head(25)
        rows = rows[rows._others == rows._others.min()]
        area = [_mask_area(root, d, name) for d in rows.dicom_id]
        best = rows.assign(_area=area).sort_values(["_area", "dicom_id"], ascending=[False, True]).iloc[0]
        picks.append((name, best))
    return picks


def _film_path(root: Path, row: pd.Series) -> Path:
    pf = f"p{int(row.subject_id)}"
    return root / "files" / pf[:3] / pf / f"s{int(row.study_id)}" / f"{row.dicom_id}.dcm"


def _outline(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask)


def gallery_examples(cohort_dir: str | Path, findings: tuple[str, ...] = RENDERED_FINDINGS
                     ) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """Return (finding, dicom_id, display image, mask) for one example film per finding (notebook 01, data prep)."""
    root = Path(cohort_dir)
    out = []
    for name, row in _pick_examples(root, findings):
        img = display_array(_film_path(root, row))
        mask = synthetic_truth_masks(root, str(row.dicom_id)).get(label_slug(name), np.zeros(img.shape, bool))
        out.append((name, str(row.dicom_id), img, mask))
    return out


def gallery_png(cohort_dir: str | Path, path: str | Path, findings: tuple[str, ...] = RENDERED_FINDINGS,
                cols: int = 4, outline: bool = True) -> Path:
    """Save the gallery as one PNG grid (red mask outlines) without plotly or a browser (notebook 01, data prep)."""
    ex = gallery_examples(cohort_dir, findings)
    if not ex:
        raise ValueError(f"no finding of {findings} occurs in {cohort_dir}")
    n = ex[0][2].shape[0]
    rows = -(-len(ex) // cols)
    grid = np.zeros((rows * n, cols * n, 3), np.uint8)
    for k, (name, _, img, mask) in enumerate(ex):
        rgb = np.repeat((img * 255).astype(np.uint8)[..., None], 3, axis=2)
        if outline:
            rgb[_outline(mask)] = (255, 40, 40)
        r, c = divmod(k, cols)
        grid[r * n : (r + 1) * n, c * n : (c + 1) * n] = rgb
    Image.fromarray(grid).save(path)
    return Path(path)


def gallery_figure(cohort_dir: str | Path, findings: tuple[str, ...] = RENDERED_FINDINGS, cols: int = 4,
                   size: int = 256) -> go.Figure:
    """Return a plotly figure with one film per finding and toggleable mask outlines (notebook 01, data prep)."""
    ex = gallery_examples(cohort_dir, findings)
    if not ex:
        raise ValueError(f"no finding of {findings} occurs in {cohort_dir}")
    rows = -(-len(ex) // cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[name for name, *_ in ex],
                        horizontal_spacing=0.01, vertical_spacing=0.04)
    outline_traces = []
    for k, (name, dicom_id, img, mask) in enumerate(ex):
        r, c = divmod(k, cols)
        n = img.shape[0]
        scale = size / n
        small = Image.fromarray((img * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
        buf = io.BytesIO()
        small.save(buf, format="PNG")
        src = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        fig.add_trace(go.Image(source=src, hovertemplate=f"{dicom_id}<extra></extra>"), row=r + 1, col=c + 1)
        ys, xs = np.nonzero(_outline(mask))
        fig.add_trace(go.Scatter(x=(xs + 0.5) * scale, y=(ys + 0.5) * scale, mode="markers",
                                 marker={"size": 2, "color": "red"}, name="mask outline", legendgroup="outline",
                                 showlegend=k == 0, hoverinfo="skip"), row=r + 1, col=c + 1)
        outline_traces.append(len(fig.data) - 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    shown = [True] * len(fig.data)
    hidden = [i not in outline_traces for i in range(len(fig.data))]
    fig.update_layout(
        height=rows * (size + 30) + 60, width=cols * size + 40, margin={"l": 10, "r": 10, "t": 60, "b": 10},
        title="Synthetic cohort: one film per finding (red: ground-truth mask outline)",
        updatemenus=[{"type": "buttons", "direction": "left", "x": 1.0, "xanchor": "right", "y": 1.06,
                      "buttons": [{"label": "Show outlines", "method": "restyle", "args": [{"visible": shown}]},
                                  {"label": "Hide outlines", "method": "restyle", "args": [{"visible": hidden}]}]}],
    )
    return fig
