"""The web voice widget: one script tag on any allowed site, a conversation in the browser.

``web_router(host, allowed_origins=..., ice_servers=..., secret=...)`` gives the
routes (see :mod:`.router`); the widget itself is built from ``web/`` into
``voxline/web/widget.js``. Needs the ``voxline[webrtc]`` extra.
"""

from __future__ import annotations

from .config import WebConfig, WebConfigError
from .router import WebRouter, web_router

__all__ = ["WebConfig", "WebConfigError", "WebRouter", "web_router"]
