"""``GET /v1/admin/reports``: the HTML reports of ``SOCIALREC_HOME/reports`` for the admin role.

The index is a readable page (a table: report, kind, dataset, date, size, each linked) or, with
``Accept: application/json``, ``{"reports": [{"name", "title", "kind", "modified", "bytes",
"url"}]}``, newest first. ``GET /v1/admin/reports/{name}`` serves one report as the page it is
(tables and charts, written by ``socialrec evaluate`` / ``demo``, ``socialrec value`` and the
campaign jobs). Names are plain file names ending in ``.html`` (no paths): anything else is 404.
"""

# no `from __future__ import annotations`: FastAPI resolves the Annotated aliases at import time

import html
import re
import time
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse

from api.deps import AUTH_ERRORS, SettingsDep, require_role

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.html$"
KINDS = (("evaluate-", "evaluation"), ("demo-", "evaluation"), ("value-", "customer value"),
         ("campaign", "campaign"), ("experiment", "campaign"), ("uplift", "campaign"))
router = APIRouter(tags=["admin"], dependencies=[Depends(require_role("admin"))], responses=AUTH_ERRORS)


def _kind(name: str) -> str:
    return next((kind for prefix, kind in KINDS if name.startswith(prefix)), "report")


def _title(path: Path) -> str:
    try:
        head = path.read_bytes()[:4096].decode("utf-8", errors="replace")
    except OSError:
        return path.stem
    m = re.search(r"<title>(.*?)</title>", head, flags=re.S | re.I)
    return html.unescape(m.group(1).strip()) if m else path.stem


def list_reports(folder: Path) -> list[dict]:
    """Reports of ``folder`` (``*.html``), newest first."""
    if not folder.is_dir():
        return []
    out = []
    for path in folder.glob("*.html"):
        if not re.fullmatch(NAME_PATTERN, path.name):
            continue
        st = path.stat()
        out.append({"name": path.name, "title": _title(path), "kind": _kind(path.name),
                    "modified": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
                    "bytes": st.st_size, "url": f"/v1/admin/reports/{path.name}", "_mtime": st.st_mtime})
    out.sort(key=lambda r: (-r["_mtime"], r["name"]))
    for r in out:
        del r["_mtime"]
    return out


def _index_page(reports: list[dict]) -> str:
    rows = "".join(
        f"<tr><td><a href=\"{html.escape(r['url'])}\">{html.escape(r['title'])}</a></td><td>{html.escape(r['kind'])}</td>"
        f"<td><code>{html.escape(r['name'])}</code></td><td>{r['modified']}</td><td>{r['bytes'] / 1024:.0f} KiB</td></tr>"
        for r in reports)
    body = (f"<table id=\"reports\"><thead><tr><th>report</th><th>kind</th><th>file</th><th>written (UTC)</th>"
            f"<th>size</th></tr></thead><tbody>{rows}</tbody></table>" if reports else
            "<p id=\"no-reports\">No reports yet: <code>socialrec evaluate</code>, <code>socialrec value</code> and "
            "the campaign jobs write them.</p>")
    return ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>socialrec reports</title>"
            "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}"
            "td,th{border-bottom:1px solid #ddd;padding:.35em .8em;text-align:left}</style></head>"
            f"<body><h1>Reports</h1>{body}</body></html>")


@router.get("/v1/admin/reports", response_class=HTMLResponse,
            responses={200: {"content": {"text/html": {}, "application/json": {}}}})
def reports_index(request: Request, settings: SettingsDep):
    """The reports, newest first: an HTML page, or JSON with ``Accept: application/json``."""
    reports = list_reports(Path(settings.home) / "reports")
    if "application/json" in request.headers.get("accept", "") and "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"reports": reports})
    return HTMLResponse(_index_page(reports))


@router.get("/v1/admin/reports/{name}", response_class=HTMLResponse,
            responses={404: {"content": {"application/problem+json": {}}}})
def report_page(name: Annotated[str, PathParam(description="a report file name, e.g. value-ciao.html")], settings: SettingsDep):
    """One report as a page (HTML with its tables and charts)."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise HTTPException(404, "no such report")
    path = Path(settings.home) / "reports" / name
    if not path.is_file():
        raise HTTPException(404, "no such report")
    return HTMLResponse(path.read_text(encoding="utf-8", errors="replace"))
