"""HTML reports with embedded plots (matplotlib PNGs as data URIs): one self-contained file each."""

from __future__ import annotations

import base64
import html
import io
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def figure_to_img(fig) -> str:
    """An ``<img>`` tag holding ``fig`` as a base64 PNG; the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'


def table_html(rows: list[dict], columns: list[str], float_fmt: str = "{:.4f}") -> str:
    """A plain HTML table of ``rows`` (dicts) restricted to ``columns``."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for row in rows:
        cells = []
        for c in columns:
            v = row.get(c, "")
            cells.append(f"<td>{float_fmt.format(v) if isinstance(v, float) else html.escape(str(v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def write_html(path: str | os.PathLike, title: str, sections: list[tuple[str, str]]) -> Path:
    """Write a self-contained HTML page atomically.

    Args:
        path: output file.
        title: page title.
        sections: ``[(heading, inner_html), ...]``.
    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}"
    )
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
             f"<p>Generated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} by socialrec.</p>"]
    for heading, inner in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{inner}")
    parts.append("</body></html>")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(parts), encoding="utf-8")
    os.replace(tmp, path)
    return path


def evaluation_report(result: dict, path: str | os.PathLike) -> Path:
    """HTML report of a ``socialrec evaluate`` result: protocol, metric table and bar charts.

    Args:
        result: the dict returned by :func:`recsys.evaluation.evaluate`.
        path: output ``.html`` file.
    Returns:
        The path written.
    """
    models = result["models"]
    ks = result.get("ks", [10])
    metric_names = ["precision", "recall", "ndcg", "hr", "map", "coverage"]
    columns = ["model"] + [f"{m}@{k}" for k in ks for m in metric_names] + ["fit_seconds"]
    rows = [{"model": name, **{c: v for c, v in vals.items() if isinstance(v, float)}} for name, vals in models.items()]
    fig, axes = plt.subplots(1, len(ks), figsize=(5.5 * len(ks), 3.6), squeeze=False)
    for ax, k in zip(axes[0], ks):
        names = list(models)
        width = 0.8 / 3
        for i, metric in enumerate(("precision", "recall", "ndcg")):
            ax.bar([x + i * width for x in range(len(names))], [models[n][f"{metric}@{k}"] for n in names], width, label=f"{metric}@{k}")
        ax.set_xticks([x + width for x in range(len(names))], names, rotation=20)
        ax.set_title(f"{result['dataset']} · {result['protocol']} · @{k}")
        ax.legend(fontsize=8)
    fig2, ax2 = plt.subplots(figsize=(5.5, 3.2))
    ax2.bar(list(models), [models[n].get("fit_seconds", 0.0) for n in models], color="#888")
    ax2.set_ylabel("seconds (final fit, mean over splits)")
    ax2.set_title("training time on this machine")
    sections = [
        ("Protocol", f"<p><b>{html.escape(result['protocol'])}</b>: {html.escape(result.get('protocol_definition', ''))}; "
                     f"seed {result.get('seed')}; hyper-parameters tuned on validation data only; already-seen items "
                     f"filtered identically for every model.</p>"),
        ("Metrics (means over splits)", table_html(rows, columns)),
        ("Ranking quality", figure_to_img(fig)),
        ("Training time", figure_to_img(fig2)),
        ("Chosen hyper-parameters", "<pre>" + html.escape("\n".join(f"{n}: {models[n].get('params')}" for n in models)) + "</pre>"),
    ]
    return write_html(path, f"socialrec evaluation — {result['dataset']} / {result['protocol']}", sections)
