// Measures the agent's audio as the browser plays it (WebRTC): the level of the
// remote track, sampled every 20 ms. The widget's speaking ring and the tests use it.
export class RemoteMeter {
  constructor(onLevel) {
    this.onLevel = onLevel;
    this.context = null;
    this.timer = null;
  }
  attach(track) {
    this.stop();
    try {
      const Context = window.AudioContext || window.webkitAudioContext;
      this.context = new Context();
      const source = this.context.createMediaStreamSource(new MediaStream([track]));
      const analyser = this.context.createAnalyser();
      analyser.fftSize = 512;
      source.connect(analyser);
      const data = new Float32Array(analyser.fftSize);
      this.timer = setInterval(() => {
        analyser.getFloatTimeDomainData(data);
        let sum = 0;
        for (let i = 0; i < data.length; i++) sum += data[i] * data[i];
        this.onLevel(Math.sqrt(sum / data.length) * 4, 0.02);
      }, 20);
    } catch (e) {
      this.stop();
    }
  }
  stop() {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (this.context) this.context.close().catch(() => {});
    this.context = null;
  }
}
