// The console's reading mode switch and pronunciation dictionary editor (docs/viewers.md).
import { Unauthorized, api, el, t } from "./common.js";

const $ = (id) => document.getElementById(id);
let loaded = false;

function problem(e) {
  if (e instanceof Unauthorized) return;
  const detail = typeof e.detail === "string" ? e.detail : JSON.stringify(e.detail || "");
  $("dict-error").hidden = false;
  $("dict-error").textContent = `${e.message}${detail ? ": " + detail : ""}`;
}

async function refreshReading() {
  let s;
  try {
    s = await api("GET", "/console/state");
  } catch {
    return;
  }
  if (document.activeElement !== $("reading-mode")) $("reading-mode").value = s.reading.mode;
  $("reading-on").checked = s.reading.enabled;
  $("dict-error").hidden = !s.dictionary_error;
  $("dict-error").textContent = s.dictionary_error || "";
}

async function refreshDictionary() {
  let d;
  try {
    d = await api("GET", "/dictionary");
  } catch (e) {
    return problem(e);
  }
  loaded = true;
  const box = $("dict");
  box.replaceChildren();
  if (!d.entries.length) box.append(el("li", { cls: "muted", text: t("dict_none") }));
  for (const entry of d.entries) {
    const remove = el("button", { type: "button", text: "✕" });
    remove.onclick = async () => {
      try {
        await api("POST", "/dictionary/remove", { term: entry.term });
      } catch (e) {
        problem(e);
      }
      refreshDictionary();
    };
    box.append(el("li", {}, el("span", { text: `${entry.term} → ${entry.say}${entry.regex ? " (regex)" : ""}` }), remove));
  }
  const more = d.total > d.entries.length ? `+${d.total - d.entries.length} … ` : "";
  $("dict-more").textContent = `${more}${d.starter} ${t("dict_starter")}`;
}

async function setReading(body) {
  try {
    await api("POST", "/reading", body);
  } catch (e) {
    problem(e);
  }
  refreshReading();
}

function wire() {
  $("reading-mode").onchange = () => setReading({ mode: $("reading-mode").value });
  $("reading-on").onchange = () => setReading({ enabled: $("reading-on").checked });
  $("dict-form").onsubmit = async (ev) => {
    ev.preventDefault();
    $("dict-error").hidden = true;
    const body = { term: $("dict-term").value, say: $("dict-say").value, regex: $("dict-regex").checked };
    try {
      await api("POST", "/dictionary/entry", body);
      $("dict-term").value = "";
      $("dict-say").value = "";
    } catch (e) {
      problem(e);
    }
    refreshDictionary();
  };
  $("dict-test-form").onsubmit = async (ev) => {
    ev.preventDefault();
    try {
      const out = await api("POST", "/dictionary/test", { text: $("dict-test").value });
      $("dict-said").textContent = out.said;
    } catch (e) {
      problem(e);
    }
  };
}

wire();
refreshDictionary();
refreshReading();
setInterval(() => {
  if ($("main").hidden) return;
  refreshReading();
  if (!loaded) refreshDictionary(); // the first try came before the sign-in
}, 2000);
