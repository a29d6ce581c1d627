"""The page's pieces: what every section reads, embedded figures, escaped tables, the page shell."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from reprovision import plots
from reprovision.config import Config
from reprovision.data.shards import Shards
from reprovision.files import read_json
from reprovision.models.predictor import Predictor


@dataclass
class RunFiles:
    """A run's outputs as the report reads them: the config, the model, the evaluate stage's
    predictions, and the directories of its metrics, the split and the normalise stage's output
    (text: the encoded split)."""

    cfg: Config
    model: Predictor
    predictions: list[dict[str, str]]
    metrics_dir: Path
    split_dir: Path
    data_dir: Path | None = None

    @cached_property
    def test_x(self) -> Shards:
        """The test split's inputs as the dataset has them (uint8 images, raw table rows, dataset
        token ids), indexed like an array and read a row at a time: the report shows a few."""
        return Shards(self.split_dir / "test")

    @cached_property
    def classes(self) -> list[str]:
        return list(self.model.hparams.classes)

    def class_indices(self, column: str) -> np.ndarray:
        """A classification's `actual` or `predicted` column as class indices."""
        index = {c: i for i, c in enumerate(self.classes)}
        return np.array([index[p[column]] for p in self.predictions], dtype=np.int64)

    @cached_property
    def summary(self) -> dict:
        """The split stage's summary.json (target name, features); empty when absent."""
        path = self.split_dir / "summary.json"
        return read_json(path) if path.exists() else {}


class Safe(str):
    """HTML built here from escaped parts: `cell` and `table` pass it through unescaped."""


def escape(value: object) -> str:
    return value if isinstance(value, Safe) else html.escape(str(value))


def img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def figure(fig, alt: str) -> str:
    return img(plots.png_bytes(fig), alt)


def table(header: list[str], rows: list[list[object]], css: str = "") -> str:
    """An HTML table, every value escaped unless it is `Safe`; wide tables scroll sideways."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "\n".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f'<div class="scroll"><table class="{css}"><tr>{head}</tr>\n{body}</table></div>'


def shade(value: float, limit: float) -> str:
    """A background whose colour says the sign (red: for, blue: against) and whose strength says
    the size of `value` relative to `limit`, the largest in view."""
    strength = min(abs(value) / limit, 1.0) if limit > 0 else 0.0
    rgb = "214, 39, 40" if value > 0 else "31, 119, 180"
    return f"background: rgba({rgb}, {strength:.2f})"


def section(heading: str, body: str) -> str:
    return f"<h2>{html.escape(heading)}</h2>\n{body}"


def page(title: str, sections: list[str]) -> str:
    body = "\n".join(sections)
    return PAGE.format(title=html.escape(title), body=body)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>reprovision report: {title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; }} th, td {{ padding: .25rem .8rem; border-bottom: 1px solid #ddd; }}
th {{ text-align: left; font-weight: 600; }} img {{ max-width: 100%; }}
.gallery, .row {{ display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; }}
.row img {{ max-width: 48%; }} .scroll {{ overflow-x: auto; }}
figure {{ margin: 0; }} figcaption {{ font-size: .8rem; color: #555; }}
.doc {{ margin: .8rem 0; padding: .5rem .8rem; border-left: 3px solid #ccc; line-height: 1.7; }}
.doc .words span {{ padding: 0 .1rem; border-radius: 2px; }} .probs, .strongest {{ font-size: .85rem; color: #444; }}
</style></head>
<body>
<h1>{title}</h1>
{body}
</body></html>
"""
