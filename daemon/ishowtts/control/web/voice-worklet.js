// The overlay's voice on the audio thread: a small jitter buffer between the daemon's blocks
// (posted by audio.js as they arrive) and the sound card.
//
// It waits until `target` frames are buffered, then plays the newest `target` of them; if it
// runs dry it counts an underrun and waits for `target` again. The daemon's clock and the card's drift apart by a few parts
// in a million: when the buffer has grown past 1.5 times the target it drops silent frames, when it
// has shrunk below half it holds (plays a little silence before) a silent block; speech is
// never cut or stretched for that. Past `target` + 0.5 s (a burst after a stall) it skips to the
// newest audio. Marks (a line's start, its end) are posted back when their frame is played.

class Voice extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.target = options.processorOptions.target;
    this.hardMax = this.target + Math.round(sampleRate / 2);
    this.chunks = []; // {pcm: Int16Array | null, n, off, marks: [{at, mark}]}
    this.buffered = 0; // frames in chunks, not yet played
    this.pending = []; // marks that belong to the next chunk
    this.playing = false;
    this.stats = { underruns: 0, trimmed: 0, held: 0, skipped: 0, played: 0 };
    this.quanta = 0;
    this.port.onmessage = (e) => this.take(e.data);
  }

  take(d) {
    if (d instanceof ArrayBuffer) {
      const v = new DataView(d);
      const n = v.getUint32(4, true);
      const pcm = v.getUint8(0) === 0 ? new Int16Array(d, 8, n) : null;
      this.chunks.push({ pcm, n, off: 0, marks: this.pending });
      this.pending = [];
      this.buffered += n;
    } else if (d.mark) {
      this.pending.push({ at: d.mark.at, mark: d.mark });
    } else if (d.reset) {
      this.chunks = [];
      this.pending = [];
      this.buffered = 0;
      this.playing = false;
    }
  }

  // Drops `frames` from the head of the buffer (silence, or a backlog), passing its marks.
  drop(frames) {
    while (frames > 0 && this.chunks.length) {
      const c = this.chunks[0];
      const k = Math.min(frames, c.n - c.off);
      this.passMarks(c, c.off + k);
      c.off += k;
      this.buffered -= k;
      frames -= k;
      if (c.off >= c.n) this.chunks.shift();
    }
  }

  passMarks(c, upTo) {
    while (c.marks.length && c.marks[0].at <= upTo) this.port.postMessage({ played: c.marks.shift().mark });
  }

  steer(quantum) {
    const head = this.chunks[0];
    if (this.buffered > this.hardMax) {
      this.stats.skipped += this.buffered - this.target;
      this.drop(this.buffered - this.target);
    } else if (this.buffered > 1.5 * this.target && head && !head.pcm) {
      const k = Math.min(head.n - head.off, this.buffered - this.target);
      this.stats.trimmed += k;
      this.drop(k);
    } else if (this.buffered < this.target / 2 && head && !head.pcm) {
      this.stats.held += quantum;
      return true; // play silence now, keep the buffer
    }
    return false;
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    const n = out.length;
    this.report();
    if (!this.playing) {
      if (this.buffered < this.target) {
        out.fill(0);
        return true;
      }
      this.drop(this.buffered - this.target); // start at the live point
      this.playing = true;
    }
    if (this.steer(n)) {
      out.fill(0);
      return true;
    }
    let i = 0;
    while (i < n && this.chunks.length) {
      const c = this.chunks[0];
      const k = Math.min(n - i, c.n - c.off);
      if (c.pcm) for (let j = 0; j < k; j++) out[i + j] = c.pcm[c.off + j] / 32768;
      else out.fill(0, i, i + k);
      c.off += k;
      this.passMarks(c, c.off);
      i += k;
      if (c.off >= c.n) this.chunks.shift();
    }
    this.buffered -= i;
    this.stats.played += i;
    if (i < n) {
      out.fill(0, i);
      this.stats.underruns += 1;
      this.playing = false;
    }
    return true;
  }

  report() {
    if (++this.quanta % 50) return;
    this.port.postMessage({ stats: { ...this.stats, buffered: this.buffered } });
  }
}

registerProcessor("ishowtts-voice", Voice);
