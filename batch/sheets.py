"""Comparison sheets (input | reconstruction | absolute difference) and their index.html."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import torch
from PIL import Image, ImageDraw, ImageFont

from air3d.images import to_pil
from air3d.renderer.world import ATTRIBUTE_ROLES

PANEL_TITLES = ("input", "reconstruction", "|input - reconstruction|")
GAP = 8  # pixels between panels and around the sheet
TITLE_HEIGHT = 22  # pixels of the title strip above the panels


def compare_sheet(image: torch.Tensor, reconstruction: torch.Tensor, scale: int) -> Image.Image:
    """Takes an input and its reconstruction, (3, S, S) in [0, 1] each, to one RGB sheet of
    three panels side by side, each upscaled `scale` times (nearest: pixels stay visible)."""
    difference = (image - reconstruction).abs()
    panels = [to_pil(t) for t in (image, reconstruction, difference)]
    side = image.shape[-1] * scale
    width = GAP + 3 * (side + GAP)
    sheet = Image.new("RGB", (width, TITLE_HEIGHT + side + GAP), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(14)
    for k, (panel, title) in enumerate(zip(panels, PANEL_TITLES, strict=True)):
        left = GAP + k * (side + GAP)
        sheet.paste(panel.resize((side, side), Image.Resampling.NEAREST), (left, TITLE_HEIGHT))
        draw.text((left, 3), title, fill="black", font=font)
    return sheet


def save_png(image: Image.Image, path: Path) -> None:
    """Writes a PNG atomically: a finished file or none (resumed runs skip existing files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


@dataclass(frozen=True)
class IndexEntry:
    """One rendered line: where its files are (relative to the index) and what it holds."""

    line: int
    source: str
    objects: Sequence[dict[str, Any]]  # the line's objects, as inferred
    render: str  # relative path of the reconstruction PNG
    sheet: str | None  # relative path of the comparison sheet; None if there is none


def index_html(title: str, entries: Sequence[IndexEntry], skipped: Sequence[str]) -> str:
    """A self-contained page laying out every sheet beside its object list. Everything taken
    from the input file (sources, shape names, messages) is HTML-escaped."""
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;margin:1em}"
        "figure{margin:0 0 1.5em 0;border-bottom:1px solid #ccc;padding-bottom:1em}"
        "table{border-collapse:collapse;font-size:90%}td,th{padding:2px 8px;text-align:right}"
        "th{background:#eee}td:first-child,th:first-child{text-align:left}"
        "code{word-break:break-all}</style>",
        "</head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>{len(entries)} images; {len(skipped)} lines skipped.</p>",
    ]
    for entry in entries:
        parts.append("<figure>")
        parts.append(
            f"<figcaption><code>{e(entry.source)}</code> (line {entry.line}, "
            f"{len(entry.objects)} objects)</figcaption>"
        )
        if entry.sheet is not None:
            src = e(quote(entry.sheet))
            parts.append(f'<a href="{src}"><img src="{src}" loading="lazy" alt="sheet"></a>')
        else:
            render = e(quote(entry.render))
            parts.append(f'<p>no sheet (input unreadable); <a href="{render}">render</a></p>')
        parts.append(_objects_table(entry.objects))
        parts.append("</figure>")
    if skipped:
        parts.append("<h2>Skipped lines</h2><ul>")
        parts.extend(f"<li><code>{e(message)}</code></li>" for message in skipped)
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _objects_table(objects: Sequence[dict[str, Any]]) -> str:
    e = html.escape
    if not objects:
        return "<p>no objects</p>"
    rows = [
        "<table><tr><th>object</th><th>x</th><th>z</th><th>yaw (deg)</th><th>presence</th></tr>"
    ]
    for obj in objects:
        # the kind in words: the world's attribute values, then the shape ("red large cube")
        words = [str(obj[name]) for name in ATTRIBUTE_ROLES if name in obj] + [str(obj["shape"])]
        x, _, z = obj["position"]
        presence = obj.get("presence")
        presence = f"{presence:.2f}" if isinstance(presence, int | float) else ""
        rows.append(
            f"<tr><td>{e(' '.join(words))}</td><td>{x:.2f}</td><td>{z:.2f}</td>"
            f"<td>{obj['yaw_deg']:.0f}</td><td>{e(presence)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)
