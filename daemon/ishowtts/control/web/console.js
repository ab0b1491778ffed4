// The operator's console: now speaking, queue, live decisions, mutes, controls, health.
import {
  Feed, Unauthorized, api, applyLanguage, el, forgetToken, kindLabel, seconds, showLogin, t,
  toggleLanguage,
} from "./common.js";

const MAX_ROWS = 500;
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

let feed = null;
let voicesShown = "";
let refreshTimer = null;
let paused = false;
const rows = new Map(); // event id → its line in the decisions list

// ---- state (queue, now speaking, health) --------------------------------------------------

async function refresh() {
  let s;
  try {
    s = await api("GET", "/console/state");
  } catch (e) {
    if (e instanceof Unauthorized) return signIn();
    return;
  }
  $("main").hidden = false;
  renderNow(s.now, s.player);
  renderQueue(s.queue, s.queued);
  renderMutes(s.mutes, s.mutes_error);
  renderHealth(s);
  renderVoices(s.voices, s.default_voice);
  if (document.activeElement !== $("volume")) {
    $("volume").value = Math.round(s.player.volume * 100);
    $("volume-out").textContent = `${$("volume").value}%`;
  }
}

function soon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 150);
}

function renderNow(now, player) {
  paused = player.paused;
  const pause = $("pause");
  pause.dataset.i18n = paused ? "resume" : "pause";
  pause.textContent = t(pause.dataset.i18n);
  const box = $("now");
  box.replaceChildren();
  $("skip").disabled = !now;
  if (!now) {
    box.append(el("p", { cls: "muted", text: t("nothing") }));
    return;
  }
  box.classList.toggle("paid", now.paid);
  const left = now.left_s === null ? "" : `${now.complete ? "" : "≥ "}${seconds(now.left_s)} ${t("left")}`;
  box.append(
    el("div", { cls: "meta" },
      el("span", { cls: `kind kind-${now.kind}`, text: kindLabel(now.kind) }),
      el("strong", { cls: "user", text: now.user }),
      el("span", { cls: "voice", text: `${t("voice")}: ${now.voice}` }),
      el("span", { cls: "left", text: left })),
    el("p", { cls: "text", text: now.text }),
  );
}

function renderQueue(queue, total) {
  $("queued").textContent = total ? `(${total})` : "";
  const box = $("queue");
  box.replaceChildren();
  if (!queue.length) {
    box.append(el("p", { cls: "muted", text: t("empty") }));
    return;
  }
  const byKind = new Map();
  for (const item of queue) {
    if (!byKind.has(item.kind)) byKind.set(item.kind, []);
    byKind.get(item.kind).push(item);
  }
  for (const [kind, items] of byKind) {
    const list = el("ul", { cls: "queue-list" });
    for (const item of items) {
      const remove = el("button", { cls: "icon", text: "✕", title: t("remove") });
      remove.type = "button";
      remove.onclick = () => act("POST", "/queue/remove", { id: item.id });
      const li = el("li", { cls: "queue-item" },
        el("strong", { cls: "user", text: item.user }),
        el("span", { cls: "text", text: item.text }),
        el("span", { cls: "times", text: `${t("age")} ${seconds(item.age_s)} · ${t("ttl")} ${seconds(Math.max(0, item.ttl_s))}` }),
        remove);
      li.dataset.id = item.id;
      list.append(li);
    }
    box.append(el("h3", { cls: `kind kind-${kind}`, text: `${kindLabel(kind)} · ${items.length}` }), list);
  }
}

function renderMutes(mutes, error) {
  $("mutes-error").hidden = !error;
  $("mutes-error").textContent = error ? `${t("not_saved")}: ${error}` : "";
  const box = $("mutes");
  box.replaceChildren();
  if (!mutes.length) box.append(el("li", { cls: "muted", text: t("no_mutes") }));
  for (const m of mutes) {
    const undo = el("button", { text: t("unmute") });
    undo.type = "button";
    undo.onclick = () => act("POST", "/unmute", { platform: m.platform, uid: m.uid, name: m.name });
    const li = el("li", {},
      el("strong", { cls: "user", text: m.name || m.uid }),
      el("span", { cls: "muted", text: ` ${m.platform}${m.uid ? " · " + m.uid : ""} ` }),
      undo);
    li.dataset.user = m.name;
    box.append(li);
  }
}

function renderHealth(s) {
  const engine = $("engine");
  engine.replaceChildren();
  // Which engine speaks first (F5 or the fallback, and why), then the rest of what it says.
  const first = ["speaking", "primary_error", "engine", "state", "model", "precision", "device"];
  const keys = [...first.filter((k) => k in s.engine), ...Object.keys(s.engine).filter((k) => !first.includes(k))];
  for (const key of keys) {
    const dd = el("dd", { text: s.engine[key] });
    if ((key === "speaking" && s.engine[key] === "fallback") || key === "primary_error") dd.className = "warn";
    engine.append(el("dt", { text: key }), dd);
  }
  const list = $("connectors");
  list.replaceChildren();
  for (const c of s.connectors) {
    const counters = Object.entries(c.counters).map(([k, v]) => `${k} ${v}`).join(" · ");
    list.append(el("li", { cls: `state-${c.state}` },
      el("span", { cls: "dot" }),
      el("strong", { text: c.name }),
      el("span", { text: ` ${c.platform} · ${c.state}` }),
      counters ? el("small", { cls: "muted", text: ` ${counters}` }) : null));
  }
  const tl = s.timeline;
  const perMinute = 60 / tl.slot_s;
  chart("ttfa", tl.ttfa_ms, (v) => `${v} ms`);
  chart("rtf", tl.rtf, (v) => v.toFixed(3));
  chart("depth", tl.depth, (v) => String(v));
  chart("drops", tl.dropped.map((v) => v * perMinute), (v) => `${Math.round(v)}/min`);
}

// A small line chart in an SVG: no library, a polyline per run of measured points.
function chart(name, values, label) {
  const svg = $(`chart-${name}`);
  svg.replaceChildren();
  const known = values.filter((v) => v !== null);
  const max = Math.max(1e-9, ...known);
  const n = Math.max(values.length - 1, 1);
  let run = [];
  const flush = () => {
    if (run.length === 1) {
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", run[0][0]);
      dot.setAttribute("cy", run[0][1]);
      dot.setAttribute("r", "2");
      svg.append(dot);
    } else if (run.length > 1) {
      const line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", run.map((p) => p.join(",")).join(" "));
      svg.append(line);
    }
    run = [];
  };
  values.forEach((v, i) => {
    if (v === null) return flush();
    run.push([((i / n) * 300).toFixed(1), (58 - (v / max) * 54).toFixed(1)]);
  });
  flush();
  const last = [...known].pop();
  $(`last-${name}`).textContent = last === undefined ? "–" : label(last);
}

function renderVoices(voices, fallback) {
  const key = voices.join("\n");
  if (key === voicesShown) return;
  voicesShown = key;
  const select = $("say-voice");
  select.replaceChildren(...voices.map((v) => {
    const option = el("option", { text: v });
    option.value = v;
    option.selected = v === fallback;
    return option;
  }));
}

// ---- the live decisions -------------------------------------------------------------------

function onRecord(r) {
  if (r.type === "received" || r.type === "terminal") decision(r);
  soon();
}

function decision(r) {
  let row = rows.get(r.id);
  if (!row) {
    row = el("li", { cls: "decision" });
    row.dataset.id = r.id;
    row.dataset.user = `${r.user}\n${r.uid}`.toLowerCase();
    const time = new Date(r.t * 1000).toLocaleTimeString();
    const mute = el("button", { cls: "mute", text: t("mute"), title: `${t("mute")} ${r.user}` });
    mute.type = "button";
    mute.dataset.i18n = "mute";
    mute.hidden = r.platform === "http";
    mute.onclick = () => act("POST", "/mute", { platform: r.platform, uid: r.uid, name: r.user });
    row.append(
      el("time", { text: time }),
      el("span", { cls: "fate" }),
      el("span", { cls: `kind kind-${r.kind}`, text: kindLabel(r.kind) }),
      el("strong", { cls: "user", text: r.user }),
      el("span", { cls: "text", text: r.text }),
      el("span", { cls: "rule" }),
      mute);
    rows.set(r.id, row);
    $("decisions").prepend(row);
    while (rows.size > MAX_ROWS) {
      const [oldest] = rows.keys();
      rows.get(oldest).remove();
      rows.delete(oldest);
    }
  }
  const fate = r.type === "terminal" ? r.state : row.dataset.fate || "pending";
  row.dataset.fate = fate;
  const badge = row.querySelector(".fate");
  badge.dataset.i18n = fate;
  badge.textContent = t(fate);
  const said = r.answer || r.outcome; // a chat command's: "voices: a, b", "refused: ..."
  if (r.rule) row.querySelector(".rule").textContent = said ? `${r.rule}: ${said}` : r.rule;
  if (r.error) row.querySelector(".rule").textContent = r.error;
  // Said by another line (a combined thanks, a storm line): which one.
  if (r.merged_into) row.querySelector(".rule").textContent = `${t("said_with")} ${r.merged_into}`;
  filterRow(row);
}

function filterRow(row) {
  const fate = $("fate-filter").value;
  const who = $("user-filter").value.trim().toLowerCase();
  row.hidden = (fate && row.dataset.fate !== fate) || (who && !row.dataset.user.includes(who));
}

// ---- actions ------------------------------------------------------------------------------

function message(text, bad) {
  const box = $("message");
  box.hidden = !text;
  box.classList.toggle("bad", !!bad);
  box.textContent = text;
}

async function act(method, path, body) {
  try {
    const out = await api(method, path, body);
    soon();
    return out;
  } catch (e) {
    if (e instanceof Unauthorized) return signIn();
    const detail = Array.isArray(e.detail)
      ? e.detail.map((d) => (typeof d === "string" ? d : `${d.field}: ${d.problem}`)).join("\n")
      : e.detail || "";
    message(`${e.message}${detail ? "\n" + detail : ""}`, true);
    return null;
  }
}

function wire() {
  $("lang").onclick = () => { toggleLanguage(); refresh(); };
  $("logout").onclick = () => { forgetToken(); location.reload(); };
  $("skip").onclick = () => act("POST", "/skip");
  $("pause").onclick = () => act("POST", paused ? "/resume" : "/pause");
  $("clear").onclick = () => act("POST", "/clear", { reason: "console" });
  $("volume").oninput = () => { $("volume-out").textContent = `${$("volume").value}%`; };
  $("volume").onchange = () => act("POST", "/volume", { volume: $("volume").value / 100 });
  $("reload").onclick = async () => {
    message("");
    if (await act("POST", "/reload")) message(t("reloaded"));
  };
  $("say-form").onsubmit = async (ev) => {
    ev.preventDefault();
    const text = $("say-text").value.trim();
    if (!text) return;
    message("");
    if (await act("POST", "/say", { text, voice: $("say-voice").value })) $("say-text").value = "";
  };
  const refilter = () => { for (const row of rows.values()) filterRow(row); };
  $("fate-filter").onchange = refilter;
  $("user-filter").oninput = refilter;
}

function signIn() {
  if (feed) feed.stopped = true;
  feed = null;
  $("main").hidden = true;
  showLogin(start);
}

function setLink(state) {
  const link = $("link");
  link.dataset.state = state;
  link.dataset.i18n = state;
  link.textContent = t(state);
}

async function start() {
  await refresh();
  if ($("main").hidden) return; // the login prompt is up
  feed = new Feed(onRecord, { onUnauthorized: signIn, onGap: refresh, onState: setLink });
  feed.run();
}

applyLanguage();
wire();
setInterval(() => { if (!$("main").hidden) refresh(); }, 2000);
start();
