"""The widget bundle (package data) and the demo page.

``voxline/web/widget.js`` is built from ``web/`` at the repository root by
``make widget`` (npm ci + esbuild), which ``make install`` and ``make test`` run. A
checkout where it was never built serves ``/widget.js`` as a 503 that says how to
build it, and says so once in the log at startup.
"""

from __future__ import annotations

import html
import json
import logging
from functools import lru_cache
from pathlib import Path

log = logging.getLogger("voxline.web")

BUNDLE = Path(__file__).resolve().parents[2] / "web" / "widget.js"
MISSING = ("voxline's widget bundle is not built ({path}). Build it with `make widget` "
           "(needs Node.js 18+ and npm; `make install` does it too).")


class BundleMissing(RuntimeError):
    pass


@lru_cache(maxsize=1)
def _read(path: Path, mtime: float) -> bytes:
    return path.read_bytes()


def widget_bundle(path: Path = BUNDLE) -> bytes:
    """The built widget; raises BundleMissing with how to build it."""
    try:
        return _read(path, path.stat().st_mtime)
    except FileNotFoundError:
        raise BundleMissing(MISSING.format(path=path)) from None


def check_bundle(path: Path = BUNDLE) -> bool:
    if path.is_file():
        return True
    log.error("- %s", MISSING.format(path=path))
    return False


def demo_page(agent: str, title: str | None) -> str:
    """A page of our own that embeds the widget for ``agent`` (``GET /web/NAME``)."""
    name = html.escape(title or agent.replace("-", " ").replace("_", " ").title())
    agent_attr = html.escape(agent, quote=True)
    agent_json = html.escape(json.dumps(agent), quote=False)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{name} · voice</title>
<style>
  :root {{ color-scheme: light; }}
  body {{ margin: 0; min-height: 100vh; font: 16px/1.55 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
         color: #1d2330; background: linear-gradient(160deg, #f6f7fb 0%, #eef1f8 60%, #e8ecf6 100%); }}
  main {{ max-width: 640px; margin: 0 auto; padding: 14vh 28px 120px; }}
  .eyebrow {{ font-size: 13px; letter-spacing: .08em; text-transform: uppercase; color: #5b6477; }}
  h1 {{ font-size: clamp(30px, 5vw, 44px); line-height: 1.15; margin: 10px 0 16px; letter-spacing: -.01em; }}
  p {{ color: #424a5c; max-width: 34em; }}
  .hint {{ margin-top: 28px; padding: 14px 16px; border-radius: 12px; background: #fff; box-shadow: 0 1px 2px #0001;
          font-size: 14px; color: #5b6477; }}
  code {{ word-break: break-all; font: 13px ui-monospace, SFMono-Regular, Menlo, monospace;
          background: #f1f3f8; padding: 2px 5px; border-radius: 5px; }}
</style></head>
<body><main>
  <div class="eyebrow">Voice assistant</div>
  <h1>{name}</h1>
  <p>Talk to us in your browser: press the button in the corner, allow the microphone, and just speak.
     You can interrupt at any time.</p>
  <div class="hint">Put this on your own site with one line:<br>
    <code>&lt;script src="{{origin}}/widget.js" data-agent={agent_json}&gt;&lt;/script&gt;</code></div>
</main>
<script src="/widget.js" data-agent="{agent_attr}" data-title="{name}"></script>
</body></html>
"""
