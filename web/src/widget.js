// The widget: a floating talk button that opens a small conversation panel.
//
// The host element (in the page's DOM) carries data-voxline-state, one of
// idle | connecting | listening | speaking | error, updated live; everything else
// lives in an open shadow root so that neither the page's styles nor ours leak.
// When the agent has passed the visitor's request to a person (transfer_to_human on a
// web call), the panel shows a notice (role="status", part="handoff"), the host gets
// data-voxline-handoff="requested" and a "voxline:handoff" CustomEvent is dispatched
// on it with detail { status, target, message }.
import { Conversation, ConversationError } from "./conversation.js";
import { ICONS } from "./icons.js";
import { STYLES } from "./styles.js";

const HANDOFF_TEXT = "A person will call you back.";

const STATUS = {
  idle: "Ready when you are",
  connecting: "Connecting…",
  listening: "Listening",
  speaking: "Speaking",
  error: "Not connected",
};

export class Widget {
  constructor(options) {
    this.options = options; // server, agent, title, label, autostart, visitorToken, transport, position
    this.state = "idle";
    this.conversation = null;
    this.muted = false;
    this.agentLine = null; // the agent's caption being spoken
    this.userLine = null; // the visitor's interim caption
    this.events = [];
    this.handoff = null; // { status, target, message } once a person will call back
    this.loadedAt = performance.now();
    this._render();
  }

  _render() {
    const o = this.options;
    const host = document.createElement("div");
    host.id = o.id || "voxline-widget";
    host.setAttribute("data-voxline-state", "idle");
    host.setAttribute("data-voxline-agent", o.agent);
    const root = host.attachShadow({ mode: "open" });
    const title = o.title || "Voice assistant";
    root.innerHTML = `<style>${STYLES}</style>
<div class="vx ${o.position === "left" ? "left" : ""}" data-state="idle">
  <section class="panel" role="dialog" aria-label="${esc(title)}: voice conversation" hidden>
    <header class="head">
      <div class="orb" aria-hidden="true">${ICONS.wave}</div>
      <div class="who"><div class="title">${esc(title)}</div>
        <div class="status" role="status" aria-live="polite"><span class="dot"></span><span class="status-text"></span></div></div>
      <button class="close" type="button" aria-label="End the conversation and close">${ICONS.close}</button>
    </header>
    <div class="captions" role="log" aria-live="polite" aria-label="Conversation captions">
      <p class="empty">Say hello when you hear the assistant. Captions of both sides appear here.</p>
    </div>
    <p class="notice" role="alert" hidden></p>
    <p class="handoff" role="status" aria-live="polite" part="handoff" hidden></p>
    <div class="bar">
      <button class="mute" type="button" aria-pressed="false">${ICONS.mic}<span>Mute</span></button>
      <button class="end" type="button">${ICONS.phoneOff}<span>Hang up</span></button>
      <button class="retry" type="button" hidden>${ICONS.retry}<span>Try again</span></button>
    </div>
  </section>
  <button class="launcher" type="button" aria-expanded="false"
    aria-label="${esc(o.label || "Talk to us")}: start a voice conversation with ${esc(title)}">${ICONS.mic}<span>${esc(o.label || "Talk to us")}</span></button>
</div>`;
    this.host = host;
    this.root = root;
    const $ = (s) => root.querySelector(s);
    this.el = { vx: $(".vx"), panel: $(".panel"), launcher: $(".launcher"), captions: $(".captions"),
      notice: $(".notice"), handoff: $(".handoff"), status: $(".status-text"), mute: $(".mute"), end: $(".end"), retry: $(".retry"),
      close: $(".close"), empty: $(".empty") };
    this.audio = document.createElement("audio");
    this.audio.autoplay = true;
    this.audio.setAttribute("data-voxline-audio", "");
    this.audio.hidden = true;
    root.appendChild(this.audio);
    this.el.launcher.addEventListener("click", () => this.start());
    this.el.end.addEventListener("click", () => this.hangUp());
    this.el.close.addEventListener("click", () => this.hangUp({ close: true }));
    this.el.retry.addEventListener("click", () => this.start());
    this.el.mute.addEventListener("click", () => this.setMuted(!this.muted));
    this._setState("idle");
    (document.body || document.documentElement).appendChild(host);
  }

  _setState(state, note) {
    this.state = state;
    this.host.setAttribute("data-voxline-state", state);
    this.el.vx.setAttribute("data-state", state);
    this.el.status.textContent = note || STATUS[state];
    const inCall = state === "connecting" || state === "listening" || state === "speaking";
    this.el.mute.hidden = !inCall;
    this.el.end.hidden = !inCall;
    this.el.retry.hidden = inCall;
    this._log("state", state);
  }

  _log(kind, detail) {
    this.events.push({ t: Math.round(performance.now() - this.loadedAt), kind, detail });
    if (this.events.length > 500) this.events.shift();
  }

  _notice(text, kind = "error") {
    this.el.notice.hidden = !text;
    this.el.notice.textContent = text || "";
    this.el.notice.classList.toggle("info", kind === "info");
  }

  _open() {
    this.el.panel.hidden = false;
    this.el.launcher.hidden = true;
    this.el.launcher.setAttribute("aria-expanded", "true");
  }

  async start() {
    if (this.conversation) return;
    this._open();
    this._notice("");
    this.setMuted(false);
    this._setState("connecting");
    const conversation = new Conversation(this.options, {
      onState: (s) => {
        if (this.conversation !== conversation) return;
        this._setState(s);
        if (s === "speaking" && !this.agentLine) this._pending(); // words show once spoken
      },
      onUserText: (text, final) => this._userText(text, final),
      onBotText: (text) => this._botText(text),
      onHeard: (heard) => this._heard(heard),
      onHandoff: (handoff) => { if (this.conversation === conversation) this._handoff(handoff); },
      onUserSpeaking: (speaking) => this._log("user-speaking", speaking),
      onRemoteTrack: (track) => { this.audio.srcObject = new MediaStream([track]); this.audio.play().catch(() => {}); },
      onEnded: () => this._ended(),
    });
    this.conversation = conversation;
    try {
      await conversation.start();
      this._log("connected", conversation.transportName);
      this.host.setAttribute("data-voxline-transport", conversation.transportName);
    } catch (error) {
      if (this.conversation !== conversation) return;
      this.conversation = null;
      const message = error instanceof ConversationError ? error.message : "Something went wrong. Please try again.";
      this._log("error", error instanceof ConversationError ? error.kind : String(error));
      this.host.setAttribute("data-voxline-error", error instanceof ConversationError ? error.kind : "unknown");
      this._notice(message);
      this._setState("error");
      this.el.retry.focus();
    }
  }

  async hangUp({ close = false } = {}) {
    const conversation = this.conversation;
    this.conversation = null;
    if (conversation) await conversation.hangUp();
    this.audio.srcObject = null;
    this._closeAgentLine(false);
    this._setState("idle", "Conversation ended");
    if (close || !conversation) {
      this.el.panel.hidden = true;
      this.el.launcher.hidden = false;
      this.el.launcher.setAttribute("aria-expanded", "false");
      this.el.launcher.focus();
    }
  }

  _ended() {
    this.conversation = null;
    this.audio.srcObject = null;
    this._closeAgentLine(false);
    this._notice("The conversation has ended.", "info");
    this._setState("idle", "Conversation ended");
  }

  setMuted(muted) {
    this.muted = muted;
    this.el.mute.setAttribute("aria-pressed", String(muted));
    this.el.mute.innerHTML = `${muted ? ICONS.micOff : ICONS.mic}<span>${muted ? "Unmute" : "Mute"}</span>`;
    this.el.mute.setAttribute("aria-label", muted ? "Unmute your microphone" : "Mute your microphone");
    if (this.conversation) this.conversation.setMuted(muted);
  }

  _line(who, text) {
    if (this.el.empty) { this.el.empty.remove(); this.el.empty = null; }
    const p = document.createElement("p");
    p.className = `line ${who}`;
    p.setAttribute("data-voxline-line", who);
    p.textContent = text;
    const label = document.createElement("span");
    this.el.captions.appendChild(p);
    void label;
    this.el.captions.scrollTop = this.el.captions.scrollHeight;
    return p;
  }

  _userText(text, final) {
    if (!text) return;
    if (!this.userLine) this.userLine = this._line("visitor", text);
    this.userLine.textContent = text;
    this.userLine.classList.toggle("interim", !final);
    this._log("user-text", { text, final });
    if (final) this.userLine = null;
    this.el.captions.scrollTop = this.el.captions.scrollHeight;
  }

  _pending() {
    this.agentLine = this._line("agent", "");
    this.agentLine.classList.add("pending");
    this.agentLine.setAttribute("aria-label", "The assistant is speaking");
    this.agentLine.innerHTML = '<span class="dots" aria-hidden="true"><i></i><i></i><i></i></span>';
  }

  _botText(text) {
    if (!this.agentLine) this.agentLine = this._line("agent", "");
    if (this.agentLine.classList.contains("pending")) {
      this.agentLine.classList.remove("pending");
      this.agentLine.removeAttribute("aria-label");
      this.agentLine.textContent = "";
    }
    const current = this.agentLine.textContent;
    this.agentLine.textContent = current ? `${current} ${text.trim()}` : text.trim();
    this._log("bot-text", text);
    this.el.captions.scrollTop = this.el.captions.scrollHeight;
  }

  _heard({ text, interrupted }) {
    // The server's word on what the visitor heard: it replaces what we showed.
    const shown = text.replace(/\s*\[interrupted\]\s*$/, "").trim();
    if (!this.agentLine && shown) this.agentLine = this._line("agent", shown);
    if (this.agentLine && this.agentLine.classList.contains("pending")) {
      this.agentLine.classList.remove("pending");
      this.agentLine.textContent = "";
    }
    if (this.agentLine) {
      if (shown) this.agentLine.textContent = shown;
      this._closeAgentLine(interrupted);
    }
    this._log("heard", { text: shown, interrupted });
  }

  _handoff(data) {
    // The server's word that a person has the visitor's request and will call back.
    if (data.status !== "requested") return;
    const detail = {
      status: "requested",
      target: typeof data.target === "string" ? data.target : "",
      message: typeof data.message === "string" ? data.message : "",
    };
    this.handoff = detail;
    this.el.handoff.textContent = this.options.handoffText || HANDOFF_TEXT; // text, never markup
    this.el.handoff.hidden = false;
    this.host.setAttribute("data-voxline-handoff", "requested");
    this._log("handoff", detail);
    this.host.dispatchEvent(new CustomEvent("voxline:handoff", { detail, bubbles: true, composed: true }));
  }

  _closeAgentLine(interrupted) {
    if (!this.agentLine) return;
    if (interrupted) {
      this.agentLine.classList.add("interrupted");
      this.agentLine.setAttribute("data-voxline-interrupted", "");
    }
    if (!this.agentLine.textContent || this.agentLine.classList.contains("pending")) this.agentLine.remove();
    this.agentLine = null;
  }

  get stats() {
    const s = this.conversation ? this.conversation.stats : this._lastStats || null;
    return s ? { ...s, loadedAt: this.loadedAt } : { loadedAt: this.loadedAt };
  }
}

function esc(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
