// The console's shared pieces: the key in session storage, calls to the public API with the
// Authorization header, the signed-in identity, polling, and safe DOM building (text only:
// nothing a user or the server wrote is ever parsed as HTML).

const body = document.body;
export const consolePath = body.dataset.console;
export const apiBase = body.dataset.api;

const KEY = "querybatch.console.key";

/** The key this tab signed in with, or null. */
export function storedKey() {
  return sessionStorage.getItem(KEY);
}

/** Keep ``key`` for this tab only (session storage, never a cookie or a URL). */
export function keepKey(key) {
  sessionStorage.setItem(KEY, key);
}

/** Forget the key and go to the sign-in page. */
export function signOut() {
  sessionStorage.removeItem(KEY);
  location.assign(`${consolePath}/sign-in`);
}

/** An error answer of the API: its HTTP status and the envelope's code and message. */
export class ApiError extends Error {
  constructor(status, code, message, description, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.description = description;
    this.retryAfter = retryAfter; // seconds, from a 429's Retry-After
  }
}

/**
 * Call the public API at ``path`` with the key in the header, sending ``body`` (if any) as
 * JSON; the answer's JSON, or the response itself with ``raw``.
 */
export async function api(path, { method = "GET", key = storedKey(), raw = false, body } = {}) {
  const headers = { Authorization: `Bearer ${key}`, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(apiBase + path, {
    method,
    cache: "no-cache",
    credentials: "omit",
    redirect: "error",
    referrerPolicy: "no-referrer",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    let error = {};
    try {
      error = (await response.json()).error ?? {};
    } catch {
      // not an envelope: keep the HTTP status
    }
    throw new ApiError(
      response.status,
      error.code ?? `HTTP_${response.status}`,
      error.message ?? response.statusText,
      error.description ?? "",
      Number.parseInt(response.headers.get("Retry-After") ?? "", 10) || null,
    );
  }
  return raw ? response : response.json();
}

/** Whether the signed-in key's role allows ``action``. */
export function permits(identity, action) {
  const statement = identity.statement;
  const listed = statement.actions.includes(action);
  return statement.effect === "allow" ? listed : !listed;
}

/** Whether the role allows any of ``actions`` (a space-separated list). */
export function permitsAny(identity, actions) {
  return actions.split(" ").some((action) => permits(identity, action));
}

/** Show the nav links the role allows (``data-needs``: any of these actions) and mark the
 * current page's. */
function showNav(identity) {
  for (const link of document.querySelectorAll("nav[aria-label=Main] a")) {
    if (link.dataset.needs) link.hidden = !permitsAny(identity, link.dataset.needs);
    if (link.pathname === location.pathname) link.setAttribute("aria-current", "page");
  }
}

/** Start a page that needs a key: the identity from /whoami, or null (gone to sign in). */
export async function startPage() {
  if (!storedKey()) {
    const next = encodeURIComponent(location.pathname);
    location.replace(`${consolePath}/sign-in?next=${next}`);
    return null;
  }
  document.getElementById("sign-out")?.addEventListener("click", signOut);
  try {
    const identity = await api("/whoami");
    const who = document.getElementById("who");
    who.textContent = `${identity.key.name || identity.user} · ${identity.account} · ${identity.role}`;
    showNav(identity);
    return identity;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      signOut();
      return null;
    }
    showError(error);
    return null;
  }
}

/** Show ``error`` in the page's alert line (or ``target``). */
export function showError(error, target = document.getElementById("page-error")) {
  target.textContent = error instanceof ApiError ? `${error.message} (${error.code})` : String(error);
  target.hidden = false;
}

/** Hide the page's alert line. */
export function clearError(target = document.getElementById("page-error")) {
  target.hidden = true;
  target.textContent = "";
}

/**
 * Run ``step`` now and then again every ``interval`` ms (from one start to the next), until
 * it returns false or ``stop()`` is called. While the tab is hidden nothing is asked.
 */
export function poll(step, interval = 2000) {
  let timer = null;
  let stopped = false;
  async function run() {
    timer = null;
    if (stopped) return;
    if (document.hidden) {
      document.addEventListener("visibilitychange", run, { once: true });
      return;
    }
    const started = performance.now();
    let more = true;
    let wait = interval;
    try {
      more = (await step()) !== false;
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) {
        signOut(); // the key was revoked or expired meanwhile
        return;
      }
      if (error instanceof ApiError && error.status === 429) {
        wait = Math.max(interval, Math.min(error.retryAfter ?? 10, 300) * 1000);
      }
      showError(error);
    }
    if (more && !stopped) {
      timer = setTimeout(run, Math.max(0, wait - (performance.now() - started)));
    }
  }
  run();
  return {
    stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
    },
    now() {
      if (timer !== null) {
        clearTimeout(timer);
        run();
      }
    },
  };
}

/** The page's element with this id. */
export function byId(id) {
  return document.getElementById(id);
}

/** A page of one object that is not there (or is another tenant's): its "not found" part
 * instead of the object's, and ``title`` as the document's title. */
export function showNotFound(title) {
  byId("loading").hidden = true;
  byId("found").hidden = true;
  byId("not-found").hidden = false;
  document.title = title;
}

/** An element with attributes and children; strings become text nodes, never HTML. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on") || name === "style") throw new Error(`not allowed: ${name}`);
    if (value !== null && value !== undefined && value !== false) {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  element.append(...children.filter((c) => c !== null && c !== undefined));
  return element;
}

/** How many of a batch's sub-queries have ended, and of how many. */
export function finished(progress) {
  const done = progress.success + progress.failure + progress.stopped;
  const total = done + progress.queued + progress.running;
  return { done, total };
}

/** "1,234 / 5,000 (24.7%)" */
export function progressText(done, total) {
  const percent = total ? (100 * done) / total : 100;
  const shown = percent === 100 || percent === 0 ? percent.toFixed(0) : percent.toFixed(1);
  return `${done.toLocaleString("en")} / ${total.toLocaleString("en")} (${shown}%)`;
}

/** An ISO time as the browser's local date and time; a dash for none. */
export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString("en-GB");
}

/** Fetch ``path`` with the key and save it as ``filename`` (the key never enters a URL). */
export async function saveAs(path, filename) {
  const response = await api(path, { raw: true });
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const link = h("a", { href: url, download: filename });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
  return blob.size;
}
