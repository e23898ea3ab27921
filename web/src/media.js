// Media managers for Pipecat's transports that use the browser's own APIs.
//
// WebRTC: MicTrack hands the microphone track to the peer connection (the transport
// adds it to its audio transceiver); the agent's audio arrives as a remote track that
// the widget plays in an <audio> element. WebSocket: Pipecat's WavMediaManager records
// 16 kHz PCM and plays the agent's PCM; PlayerStats wraps it to measure what arrived
// and to flush the player at once when the visitor barges in.
import { DeviceError } from "@pipecat-ai/client-js";
import { WavMediaManager } from "@pipecat-ai/websocket-transport";

const LOCAL = { id: "local", name: "", local: true };

export function deviceErrorType(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "permissions";
    case "NotFoundError":
    case "OverconstrainedError":
      return "not-found";
    case "NotReadableError":
    case "AbortError":
      return "in-use";
    default:
      return "unknown";
  }
}

export class MicTrack {
  constructor() {
    this._callbacks = {};
    this._micEnabled = true;
    this._stream = null;
  }
  setUserAudioCallback() {}
  setClientOptions(options, override = false) {
    if (this._options && !override) return;
    this._options = options;
    this._callbacks = options.callbacks || {};
    this._micEnabled = options.enableMic !== false;
  }
  get supportsScreenShare() { return false; }
  async initialize() {
    if (this._stream) return;
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      const error = new DeviceError(["mic"], "undefined-mediadevices", "no microphone access on this page");
      this._callbacks.onDeviceError?.(error);
      throw error;
    }
    try {
      this._stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (e) {
      const error = new DeviceError(["mic"], deviceErrorType(e), e && e.message);
      this._callbacks.onDeviceError?.(error);
      throw error;
    }
    const track = this._stream.getAudioTracks()[0];
    if (track) {
      track.enabled = this._micEnabled;
      this._callbacks.onTrackStarted?.(track, LOCAL);
    }
  }
  async connect() { await this.initialize(); }
  async disconnect() {
    if (this._stream) this._stream.getTracks().forEach((t) => t.stop());
    this._stream = null;
  }
  async userStartedSpeaking() {}
  bufferBotAudio() { return undefined; }
  async getAllMics() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    return devices.filter((d) => d.kind === "audioinput");
  }
  async getAllCams() { return []; }
  async getAllSpeakers() { return []; }
  updateMic() {}
  updateCam() {}
  updateSpeaker() {}
  get selectedMic() { return {}; }
  get selectedCam() { return {}; }
  get selectedSpeaker() { return {}; }
  enableMic(enable) {
    this._micEnabled = enable;
    if (this._stream) this._stream.getAudioTracks().forEach((t) => { t.enabled = enable; });
  }
  enableCam() {}
  enableScreenShare() {}
  get isCamEnabled() { return false; }
  get isMicEnabled() { return this._micEnabled; }
  get isSharingScreen() { return false; }
  tracks() {
    const audio = this._stream && this._stream.getAudioTracks()[0];
    return { local: audio ? { audio } : {} };
  }
}

// 40 ms of 16 kHz 16-bit audio per WebSocket message.
const WS_CHUNK_BYTES = 1280;

export class PlayerStats extends WavMediaManager {
  constructor(onAudio) {
    super(WS_CHUNK_BYTES, 16000);
    this._onAudio = onAudio;
  }
  bufferBotAudio(data, id) {
    const samples = data instanceof Int16Array ? data : new Int16Array(data);
    let peak = 0;
    for (let i = 0; i < samples.length; i += 8) peak = Math.max(peak, Math.abs(samples[i]));
    this._onAudio(samples.length / 24000, peak / 32768);
    return super.bufferBotAudio(data, id);
  }
  flush() { return super.userStartedSpeaking(); }
}
