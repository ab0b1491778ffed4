// Shared by the console and the overlay: the token, calls to the API, the live event stream,
// the login prompt and the two languages. Stranger text only ever goes in through textContent.

const TOKEN_KEY = "ishowtts-token";
const LANG_KEY = "ishowtts-lang";

// A token in the address (#token=..., for an OBS browser source) is kept for the session and
// taken out of the address bar.
(function takeTokenFromAddress() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
})();

export class Unauthorized extends Error {}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function authHeaders() {
  const value = token();
  return value ? { Authorization: `Bearer ${value}` } : {};
}

export async function api(method, path, body) {
  const init = { method, headers: authHeaders(), cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 401) throw new Unauthorized();
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const err = new Error((data && data.error) || `HTTP ${resp.status}`);
    err.status = resp.status;
    err.detail = data && data.detail;
    throw err;
  }
  return data;
}

// Server-Sent Events read through fetch (EventSource cannot send the Authorization header).
// Reconnects after a drop, resuming after the last record seen.
export class Feed {
  constructor(onRecord, { onUnauthorized, onGap, onState, backlog } = {}) {
    this.onRecord = onRecord;
    this.onUnauthorized = onUnauthorized || (() => {});
    this.onGap = onGap || (() => {});
    this.onState = onState || (() => {});
    this.last = null;
    this.backlog = backlog; // records wanted on the first connection (default: the server's)
    this.stopped = false;
  }

  async run() {
    while (!this.stopped) {
      try {
        await this.once();
      } catch (e) {
        if (e instanceof Unauthorized) {
          this.onState("unauthorized");
          this.onUnauthorized();
          return;
        }
      }
      this.onState("reconnecting");
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  async once() {
    let q = this.last === null ? "" : `?since=${this.last}`;
    if (this.last === null && this.backlog !== undefined) q = `?backlog=${this.backlog}`;
    const resp = await fetch(`/events${q}`, { headers: authHeaders(), cache: "no-store" });
    if (resp.status === 401) throw new Unauthorized();
    if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
    this.onState("live");
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let end;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        this.dispatch(block);
      }
    }
  }

  dispatch(block) {
    let type = "message";
    let data = "";
    for (const line of block.split("\n")) {
      if (line.startsWith("event: ")) type = line.slice(7);
      else if (line.startsWith("data: ")) data += line.slice(6);
    }
    if (type === "gap") return this.onGap();
    if (type === "lagged" || !data) return;
    const record = JSON.parse(data);
    if (typeof record.seq === "number") this.last = record.seq;
    this.onRecord(record);
  }
}

// ---- the login prompt ---------------------------------------------------------------------

export function showLogin(onDone) {
  const dialog = document.getElementById("login");
  const input = dialog.querySelector("input");
  const hadToken = sessionStorage.getItem(TOKEN_KEY) !== null;
  dialog.querySelector(".login-wrong").hidden = !hadToken;
  sessionStorage.removeItem(TOKEN_KEY);
  dialog.hidden = false;
  input.value = "";
  input.focus();
  dialog.querySelector("form").onsubmit = (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    dialog.hidden = true;
    onDone();
  };
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// ---- languages ----------------------------------------------------------------------------

const WORDS = {
  reading: ["Reading", "朗读范围"],
  reading_mode: ["Read", "朗读"],
  reading_on: ["on", "开启"],
  mode_all: ["everyone", "全部"],
  mode_commands_only: ["!tts lines only", "仅 !tts 指令"],
  mode_paid_only: ["paid only", "仅付费"],
  mode_members_only: ["members only", "仅舰长/会员"],
  dictionary: ["Pronunciation", "读音词典"],
  dict_term: ["term", "词语"],
  dict_say: ["read as", "读作"],
  dict_add: ["Add", "添加"],
  dict_test: ["Test", "试读"],
  dict_test_text: ["a line to hear", "试读一句"],
  dict_none: ["No entries of your own", "还没有自定义词条"],
  dict_starter: ["starter entries", "条内置词条"],
  title: ["ishowtts console", "ishowtts 控制台"],
  now: ["Now speaking", "正在朗读"],
  nothing: ["Nothing is being read", "没有正在朗读的内容"],
  skip: ["Skip", "跳过"],
  pause: ["Pause", "暂停"],
  resume: ["Resume", "继续"],
  left: ["left", "剩余"],
  queue: ["Queue", "队列"],
  clear: ["Clear", "清空"],
  empty: ["The queue is empty", "队列为空"],
  age: ["age", "等待"],
  ttl: ["expires in", "过期于"],
  remove: ["Remove", "移除"],
  decisions: ["Decisions", "处理记录"],
  all: ["all", "全部"],
  pending: ["pending", "处理中"],
  spoken: ["spoken", "已朗读"],
  dropped: ["dropped", "已过滤"],
  expired: ["expired", "已过期"],
  evicted: ["evicted", "被挤出"],
  removed: ["removed", "已移除"],
  failed: ["failed", "失败"],
  said_with: ["said with", "合并于"],
  user_filter: ["user", "用户"],
  mute: ["Mute", "屏蔽"],
  unmute: ["Unmute", "取消屏蔽"],
  mutes: ["Muted users", "已屏蔽用户"],
  no_mutes: ["Nobody is muted", "没有屏蔽的用户"],
  controls: ["Controls", "控制"],
  volume: ["Volume", "音量"],
  say: ["Say", "朗读"],
  say_placeholder: ["Type a line to read aloud", "输入要朗读的文字"],
  voice: ["Voice", "音色"],
  reload: ["Reload config", "重新加载配置"],
  reloaded: ["Config reloaded", "配置已重新加载"],
  health: ["Health", "状态"],
  connectors: ["Connectors", "连接"],
  engine: ["Engine", "引擎"],
  ttfa: ["Time to first audio (ms)", "首音延迟 (毫秒)"],
  rtf: ["Real-time factor", "实时率"],
  depth: ["Queue depth", "队列长度"],
  drops: ["Not read per minute", "每分钟未读"],
  login: ["This daemon needs its access token", "需要访问令牌"],
  login_wrong: ["That token was refused", "令牌错误"],
  login_button: ["Sign in", "登录"],
  logout: ["Sign out", "退出"],
  live: ["live", "实时"],
  reconnecting: ["reconnecting", "重新连接中"],
  unauthorized: ["signed out", "未登录"],
  not_saved: ["Not saved to disk", "未能保存到磁盘"],
  kind_danmaku: ["chat", "弹幕"],
  kind_super_chat: ["super chat", "醒目留言"],
  kind_gift: ["gift", "礼物"],
  kind_guard: ["guard", "上舰"],
  kind_follow: ["follow", "关注"],
  kind_enter: ["enter", "进场"],
  kind_share: ["share", "分享"],
  kind_like: ["like", "点赞"],
  kind_system: ["system", "系统"],
};

let lang = localStorage.getItem(LANG_KEY) || (navigator.language.startsWith("zh") ? "zh" : "en");

export function t(key) {
  const pair = WORDS[key];
  return pair ? pair[lang === "zh" ? 1 : 0] : key;
}

// An event kind's label (a kind this page does not know is shown as the daemon names it).
export function kindLabel(kind) {
  return WORDS[`kind_${kind}`] ? t(`kind_${kind}`) : kind;
}

export function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll("[data-i18n-placeholder]"))
    el.placeholder = t(el.dataset.i18nPlaceholder);
}

export function toggleLanguage() {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem(LANG_KEY, lang);
  applyLanguage();
}

// ---- small DOM helpers --------------------------------------------------------------------

// An element with text set as text (never parsed as HTML).
export function el(tag, { cls, text, title } = {}, ...children) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (title) node.title = title;
  for (const child of children) if (child) node.append(child);
  return node;
}

export function seconds(s) {
  if (s === null || s === undefined) return "–";
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}
