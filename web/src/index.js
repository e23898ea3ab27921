// <script src="https://voice.example.com/widget.js" data-agent="restaurant"></script>
//
// Options (data attributes on the script tag):
//   data-agent          the agent's name (required)
//   data-autostart="1"  start the conversation on load, without a click (kiosks, tests)
//   data-title          the panel's heading (default: "Voice assistant")
//   data-label          the button's text (default: "Talk to us")
//   data-position       "right" (default) or "left"
//   data-accent         the accent colour (shortcut for --voxline-accent)
//   data-visitor-token  a visitor token signed by your site (memory recognises the visitor)
//   data-transport      "auto" (default: WebRTC, else WebSocket), "webrtc" or "websocket"
//   data-server         the voxline server (default: where this script came from)
//   data-handoff-text   the notice shown once a person will call back
//                       (default: "A person will call you back.")
// window.voxline is the widget: start(), hangUp(), setMuted(bool), state, stats, events, handoff.
// Its element gets data-voxline-handoff="requested" and dispatches "voxline:handoff"
// (a CustomEvent, detail { status, target, message }) when a person will call back.
import { Widget } from "./widget.js";

function boot(script) {
  const d = script.dataset;
  if (!d.agent) {
    console.error("voxline widget: the script tag needs data-agent");
    return;
  }
  const server = (d.server || new URL(script.src, location.href).origin).replace(/\/+$/, "");
  const widget = new Widget({
    server,
    agent: d.agent,
    title: d.title,
    label: d.label,
    position: d.position,
    visitorToken: d.visitorToken,
    transport: d.transport,
    handoffText: d.handoffText,
    webrtcTimeoutMs: d.webrtcTimeout ? Number(d.webrtcTimeout) : undefined,
  });
  if (d.accent) widget.host.style.setProperty("--voxline-accent", d.accent);
  window.voxline = widget;
  if (d.autostart === "1" || d.autostart === "true") widget.start();
}

const script = document.currentScript;
if (script) {
  if (document.body) boot(script);
  else document.addEventListener("DOMContentLoaded", () => boot(script), { once: true });
}
