// One conversation with an agent: session token, then WebRTC, else the WebSocket.
//
// Pipecat's own client (@pipecat-ai/client-js) with its SmallWebRTC and WebSocket
// transports speaks RTVI with the server, so captions, speaking state and the
// protocol's evolution come from Pipecat; we add only what it lacks: a token request,
// a bounded WebRTC attempt with an automatic WebSocket fallback, media managers that
// load nothing from third parties (media.js), and audio metering.
import { LogLevel, PipecatClient } from "@pipecat-ai/client-js";
import { SmallWebRTCTransport } from "@pipecat-ai/small-webrtc-transport";
import { ProtobufFrameSerializer, WebSocketTransport } from "@pipecat-ai/websocket-transport";
import { MicTrack, PlayerStats } from "./media.js";
import { RemoteMeter } from "./meter.js";

export class ConversationError extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind; // mic | origin | busy | connection | unavailable
  }
}

const MESSAGES = {
  permissions: "Microphone access is blocked. Allow the microphone for this site in your browser, then try again.",
  "not-found": "No microphone was found. Connect one and try again.",
  "in-use": "Your microphone is being used by another app. Close it and try again.",
  connection: "We couldn't connect. Check your internet connection and try again.",
};

export function micMessage(type) {
  return MESSAGES[type] || "The microphone could not be started. Check your browser settings and try again.";
}

function withTimeout(promise, ms) {
  let timer;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise((_, reject) => { timer = setTimeout(() => reject(new ConversationError("connection", "timeout")), ms); }),
  ]);
}

export class Conversation {
  constructor(options, events) {
    this.options = options; // { server, agent, visitorToken, transport, webrtcTimeoutMs }
    this.events = events; // onState, onUserText, onBotText, onHeard, onHandoff, onEnded, onUserSpeaking
    this.client = null;
    this.transportName = null;
    this.ended = false;
    this.stats = { startedAt: performance.now(), sessionAt: null, connectedAt: null, firstAudioAt: null,
      audioSecs: 0, lastAudioAt: null, userStartedAt: null, peak: 0, transport: null, sessionId: null,
      edges: [] }; // edges: [ms, 1 | 0] when the agent's audio starts and stops at the browser
    this._on = false;
    this.meter = new RemoteMeter((level, dt) => this._audio(dt, level));
    this._micError = null;
  }

  _audio(secs, level) {
    const now = performance.now();
    const edges = this.stats.edges;
    if (level > 0.01) {
      this.stats.audioSecs += secs;
      this.stats.lastAudioAt = now;
      if (this.stats.firstAudioAt === null) this.stats.firstAudioAt = now;
      if (!this._on && edges.length < 200) edges.push([Math.round(now), 1]);
      this._on = true;
    } else if (this._on && now - this.stats.lastAudioAt > 80) {
      this._on = false;
      if (edges.length < 200) edges.push([Math.round(this.stats.lastAudioAt), 0]);
    }
    this.stats.peak = Math.max(this.stats.peak * 0.9, level);
  }

  async _session() {
    const { server, agent, visitorToken } = this.options;
    let response;
    try {
      response = await fetch(`${server}/web/${encodeURIComponent(agent)}/session`, {
        method: "POST",
        // text/plain keeps this a simple request: a refused origin can still read why.
        headers: { "Content-Type": "text/plain" },
        body: JSON.stringify(visitorToken ? { visitor_token: visitorToken } : {}),
        credentials: "omit",
      });
    } catch (e) {
      throw new ConversationError("connection", MESSAGES.connection);
    }
    const body = await response.json().catch(() => ({}));
    if (response.status === 403) throw new ConversationError("origin", body.message || "This site may not start conversations.");
    if (response.status === 429) throw new ConversationError("busy", body.message || "All lines are busy. Please try again later.");
    if (response.status === 404) throw new ConversationError("unavailable", "This assistant is not available.");
    if (!response.ok) throw new ConversationError("connection", MESSAGES.connection);
    this.stats.sessionAt = performance.now();
    this.stats.sessionId = body.session_id;
    return body;
  }

  _callbacks() {
    const e = this.events;
    return {
      onBotReady: () => { this.stats.connectedAt = performance.now(); e.onState("listening"); },
      onBotStartedSpeaking: () => e.onState("speaking"),
      onBotStoppedSpeaking: () => e.onState("listening"),
      onUserStartedSpeaking: () => {
        this.stats.userStartedAt = performance.now();
        if (this._player) this._player.flush(); // barge-in: drop what the player still holds
        e.onUserSpeaking(true);
      },
      onUserStoppedSpeaking: () => e.onUserSpeaking(false),
      onUserTranscript: (data) => e.onUserText(data.text, !!data.final),
      onBotOutput: (data) => { if (data.spoken !== false && data.text) e.onBotText(data.text); },
      onServerMessage: (data) => {
        if (!data || typeof data !== "object") return;
        if (data.voxline === "heard") e.onHeard(data);
        else if (data.voxline === "handoff") e.onHandoff(data);
      },
      onTrackStarted: (track, participant) => {
        if (track.kind === "audio" && !(participant && participant.local)) {
          e.onRemoteTrack(track);
          this.meter.attach(track);
        }
      },
      onDeviceError: (error) => { this._micError = error; },
      onDisconnected: () => this._disconnected(),
      onBotDisconnected: () => this._disconnected(),
    };
  }

  _disconnected() {
    if (!this.stats.connectedAt || this.ended) return;
    this.ended = true;
    this.meter.stop();
    this.events.onEnded("agent");
  }

  async start() {
    const session = await this._session();
    const mode = this.options.transport || "auto";
    const webrtc = mode !== "websocket" && typeof RTCPeerConnection !== "undefined";
    if (webrtc) {
      try {
        await this._connect("webrtc", session);
        return;
      } catch (error) {
        if (error instanceof ConversationError && error.kind === "mic") throw error;
        if (mode === "webrtc") throw new ConversationError("connection", MESSAGES.connection);
      }
    }
    try {
      await this._connect("websocket", session);
    } catch (error) {
      if (error instanceof ConversationError) throw error;
      throw new ConversationError("connection", MESSAGES.connection);
    }
  }

  async _connect(kind, session) {
    this._micError = null;
    let transport;
    if (kind === "webrtc") {
      transport = new SmallWebRTCTransport({
        iceServers: session.ice_servers || [],
        waitForICEGathering: true, // aiortc does not trickle: one offer carries every candidate
        mediaManager: new MicTrack(),
        webrtcRequestParams: {
          endpoint: session.offer_url,
          headers: new Headers({ Authorization: `Bearer ${session.token}` }),
        },
      });
    } else {
      this._player = new PlayerStats((secs, level) => this._audio(secs, level));
      transport = new WebSocketTransport({
        serializer: new ProtobufFrameSerializer(),
        mediaManager: this._player,
        recorderSampleRate: 16000,
        playerSampleRate: 24000,
      });
    }
    const client = new PipecatClient({ transport, enableMic: true, enableCam: false, callbacks: this._callbacks() });
    client.setLogLevel(this.options.debug ? LogLevel.DEBUG : LogLevel.WARN);
    this.client = client;
    this.transportName = kind;
    this.stats.transport = kind;
    try {
      await client.initDevices();
      this.stats.micAt = performance.now();
    } catch (error) {
      // fall through: the mic error, if any, was reported through onDeviceError
    }
    if (this._micError) {
      await client.disconnect().catch(() => {});
      throw new ConversationError("mic", micMessage(this._micError.type === "permissions" ? "permissions"
        : this._micError.type));
    }
    try {
      const params = kind === "websocket" ? { wsUrl: session.ws_url, token: session.token } : undefined;
      await withTimeout(client.connect(params), this.options.webrtcTimeoutMs || 10000);
    } catch (error) {
      this.client = null;
      await client.disconnect().catch(() => {});
      if (this._micError) throw new ConversationError("mic", micMessage(this._micError.type));
      throw error;
    }
  }

  setMuted(muted) {
    if (this.client) this.client.enableMic(!muted);
  }

  async hangUp() {
    this.ended = true;
    this.meter.stop();
    const client = this.client;
    this.client = null;
    if (client) await client.disconnect().catch(() => {});
  }
}
