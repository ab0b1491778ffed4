// The OBS caption overlay: the line being heard, who said it, paid events highlighted; it fades
// out after the line ends. Look: ?size=32&color=white&bg=rgba(0,0,0,.5)&accent=gold&lines=3
// &linger=1.5&names=1&align=left|center|right&fade=0.6 (a bad value keeps the default).
// ?audio=1 plays the voice too (audio.js; &buffer=80: its jitter buffer in ms) and shows each
// caption when its audio is heard; &captions=0 makes it an audio-only source.
import { Voice } from "./audio.js";
import { Feed, Unauthorized, api, applyLanguage, showLogin } from "./common.js";

const q = new URLSearchParams(location.search);
const root = document.documentElement.style;
const caption = document.getElementById("caption");

function number(name, lo, hi) {
  const v = Number(q.get(name));
  return q.has(name) && Number.isFinite(v) && v >= lo && v <= hi ? v : null;
}
function colour(name, variable) {
  const v = q.get(name);
  if (v && CSS.supports("color", v)) root.setProperty(variable, v);
}

const size = number("size", 8, 300);
if (size !== null) root.setProperty("--size", `${size}px`);
const lines = number("lines", 1, 20);
if (lines !== null) root.setProperty("--lines", String(Math.round(lines)));
const fade = number("fade", 0, 10);
if (fade !== null) root.setProperty("--fade", `${fade}s`);
colour("color", "--color");
colour("bg", "--bg");
colour("accent", "--accent");
const align = { left: "flex-start", center: "center", right: "flex-end" }[q.get("align")];
if (align) caption.style.alignSelf = align;
const linger = (number("linger", 0, 60) ?? 1.5) * 1000;
const names = q.get("names") !== "0";
const captions = q.get("captions") !== "0";

let showing = null; // id of the line on screen
let timer = null;

function show(r) {
  if (!captions) return;
  clearTimeout(timer);
  showing = r.id;
  caption.classList.toggle("paid", !!r.paid);
  const amount = r.paid && r.amount ? ` · ${r.amount}` : "";
  caption.querySelector(".who").textContent = names ? `${r.user}${amount}` : "";
  caption.querySelector(".line").textContent = r.text;
  caption.dataset.id = r.id;
  caption.classList.remove("gone");
}

function hide(id) {
  if (id !== showing) return;
  clearTimeout(timer);
  timer = setTimeout(() => {
    caption.classList.add("gone");
    showing = null;
  }, linger);
}

function onRecord(r) {
  if (r.type === "speaking") show(r);
  else if (r.type === "done") hide(r.id);
}

async function start() {
  try {
    // Whether we may read, and the line playing right now; the rest comes from the feed.
    const s = await api("GET", "/console/state");
    if (s.now) show({ ...s.now });
  } catch (e) {
    if (e instanceof Unauthorized) return showLogin(start);
  }
  // No backlog: old lines are not replayed, only what starts from now on.
  new Feed(onRecord, { onUnauthorized: () => showLogin(start), backlog: 0 }).run();
}

function startVoice() {
  const voice = new Voice({
    bufferMs: number("buffer", 20, 2000) ?? 80,
    onStart: show,
    onEnd: hide,
    onUnauthorized: () => showLogin(() => voice.connect()),
  });
  voice.connect();
}

applyLanguage();
if (q.get("audio") === "1") startVoice();
else start();
