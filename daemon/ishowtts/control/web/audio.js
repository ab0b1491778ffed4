// The overlay's voice (?audio=1): the daemon's audio over a WebSocket (/audio), played through
// Web Audio with a small jitter buffer, gapless. Each line's caption is shown when its first
// sample is played, not when the daemon sends it. After a drop it reconnects and starts again
// at the live point (the buffer is emptied: no backlog).
//
// Two players, one behaviour. An AudioWorklet (voice-worklet.js) where the browser allows one:
// only in a secure context (https, or a page from localhost). OBS on another PC loads the page
// over plain http from the board's address, where there is no AudioWorklet: there each block
// is scheduled as an AudioBufferSourceNode right after the previous one (Scheduled, below).
import { token } from "./common.js";

const ACK_EVERY_S = 0.1; // how often the page tells the daemon how much it received
const QUANTUM = 128; // frames Web Audio renders at a time: a block due sooner is late

export class Voice {
  constructor({ bufferMs, onStart, onEnd, onUnauthorized }) {
    this.bufferMs = bufferMs;
    this.onStart = onStart;
    this.onEnd = onEnd;
    this.onUnauthorized = onUnauthorized;
    this.ctx = null;
    this.sink = null; // the player: post(message, transfer)
    this.early = []; // messages that came before the player was ready
    // What tests and the benchmark read (window.ishowttsVoice).
    this.stats = { state: "connecting", connects: 0, received: 0, underruns: 0 };
    window.ishowttsVoice = this.stats;
    // Outside OBS a browser starts audio only after a click or key press.
    for (const ev of ["pointerdown", "keydown"])
      document.addEventListener(ev, () => this.ctx && this.ctx.resume());
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/audio`);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    this.received = 0;
    this.acked = 0;
    this.ackEvery = Infinity; // until the hello says the rate
    this.stats.connects += 1;
    ws.onopen = () => ws.send(JSON.stringify({ token: token() }));
    ws.onmessage = (e) => this.message(e.data);
    ws.onclose = (e) => this.closed(e.code);
  }

  message(data) {
    if (typeof data === "string") {
      const m = JSON.parse(data);
      if (m.type === "hello") this.hello(m);
      else this.post({ mark: m });
      return;
    }
    this.received += new DataView(data).getUint32(4, true);
    this.stats.received += 1;
    if (this.received - this.acked >= this.ackEvery) {
      this.acked = this.received;
      this.ws.send(JSON.stringify({ ack: this.received }));
    }
    this.post(data, [data]);
  }

  post(msg, transfer = []) {
    if (this.sink) this.sink.post(msg, transfer);
    else this.early.push([msg, transfer]);
  }

  async hello(h) {
    this.stats.state = "live";
    this.ackEvery = Math.round(h.rate * ACK_EVERY_S);
    if (h.now) this.onStart(h.now);
    if (this.ctx && this.ctx.sampleRate === h.rate) return;
    if (this.ctx) this.ctx.close();
    this.sink = null;
    const ctx = new AudioContext({ sampleRate: h.rate, latencyHint: "interactive" });
    this.ctx = ctx;
    const target = Math.round((h.rate * this.bufferMs) / 1000);
    if (ctx.audioWorklet) {
      await ctx.audioWorklet.addModule("/static/voice-worklet.js");
      const node = new AudioWorkletNode(ctx, "ishowtts-voice", {
        numberOfInputs: 0,
        outputChannelCount: [1],
        processorOptions: { target },
      });
      node.port.onmessage = (e) => this.fromWorklet(e.data);
      node.connect(ctx.destination);
      this.sink = { post: (msg, transfer) => node.port.postMessage(msg, transfer) };
    } else {
      this.sink = new Scheduled(ctx, target, (mark) => this.played(mark), this.stats);
    }
    this.stats.player = ctx.audioWorklet ? "worklet" : "scheduled";
    for (const [msg, transfer] of this.early.splice(0)) this.sink.post(msg, transfer);
  }

  fromWorklet(d) {
    if (d.stats) Object.assign(this.stats, d.stats);
    else if (d.played) this.played(d.played);
  }

  played(mark) {
    if (mark.type === "start") this.onStart(mark);
    else this.onEnd(mark.id);
  }

  closed(code) {
    this.early = [];
    if (this.sink) this.sink.post({ reset: true }, []);
    if (code === 4401) {
      this.stats.state = "unauthorized";
      this.onUnauthorized();
      return;
    }
    this.stats.state = "reconnecting";
    setTimeout(() => this.connect(), code === 4429 ? 5000 : 1000);
  }
}

// The player without a worklet: the same jitter buffer, kept as how far ahead of the context's
// clock the next block is scheduled (`next`, in frames). Silence needs no node: it only moves
// `next`, which is where the clocks' drift is taken up (as in voice-worklet.js).
class Scheduled {
  constructor(ctx, target, onPlayed, stats) {
    Object.assign(stats, { trimmed: 0, held: 0, skipped: 0, played: 0, buffered: 0 });
    this.ctx = ctx;
    this.rate = ctx.sampleRate;
    this.target = target;
    this.onPlayed = onPlayed;
    this.stats = stats;
    this.next = null; // the frame the next block starts at; null: not playing
    this.marks = []; // marks that belong to the next block
  }

  post(msg) {
    if (msg instanceof ArrayBuffer) this.block(msg);
    else if (msg.mark) this.marks.push(msg.mark);
    else if (msg.reset) {
      this.next = null;
      this.marks = [];
    }
  }

  block(data) {
    const v = new DataView(data);
    const n = v.getUint32(4, true);
    const now = Math.ceil(this.ctx.currentTime * this.rate) + QUANTUM;
    if (this.next !== null && this.next < now) this.stats.underruns += 1;
    if (this.next === null || this.next < now) this.next = now + this.target;
    let ahead = this.next - now;
    if (v.getUint8(0) === 0) {
      const buffer = this.ctx.createBuffer(1, n, this.rate);
      const samples = buffer.getChannelData(0);
      const pcm = new Int16Array(data, 8, n);
      for (let i = 0; i < n; i++) samples[i] = pcm[i] / 32768;
      const source = this.ctx.createBufferSource();
      source.buffer = buffer;
      source.connect(this.ctx.destination);
      source.start(this.next / this.rate);
    } else if (ahead > 1.5 * this.target) {
      const cut = Math.min(n, ahead - this.target);
      this.stats.trimmed += cut;
      this.next -= cut;
    } else if (ahead < this.target / 2) {
      this.stats.held += this.target - ahead;
      this.next += this.target - ahead;
    }
    const start = this.next;
    this.next += n;
    ahead = this.next - now;
    for (const mark of this.marks.splice(0)) {
      const due = (start + mark.at) / this.rate - this.ctx.currentTime;
      setTimeout(() => this.onPlayed(mark), Math.max(0, due * 1000));
    }
    this.stats.played += n;
    this.stats.buffered = ahead;
  }
}
