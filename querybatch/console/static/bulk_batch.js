// One bulk batch: its status as a timeline of the states passed (polled every 2 s, or after
// the API's Retry-After, until a final state), line counts, the invalid lines when it ended
// validation_failed, the results to save, and cancel and delete behind a confirmation.
import {
  api,
  ApiError,
  byId,
  clearError,
  consolePath,
  h,
  permits,
  showError,
  showNotFound,
  startPage,
  when,
} from "./console.js";

const root = document.getElementById("bulk-batch");
const batchId = root.dataset.batchId;
const path = `/batches/${encodeURIComponent(batchId)}`;
const INTERVAL = 2000;
const SHOWN_INVALID = 200;
// The order a batch goes through (docs/bulk.md), and where the other ends branch off.
const MAIN = ["new", "copying", "copied", "validating", "processing", "processed", "writing_results", "completed"];
const FINAL = new Set(["hash_mismatch", "validation_failed", "completed", "cancelled"]);
const CANCELLABLE = new Set(["new", "copying", "copied", "validating", "processing", "processed"]);
const CANCELLING = ["cancel", "cancelling", "cancelled"];

const seen = new Set();
let identity = null;
let invalidShown = false;
let timer = null;

/** The states passed to reach ``status``: the main line up to the furthest seen, then the
 * branch it took. */
function timeline(status) {
  seen.add(status);
  let furthest = 0;
  for (const state of seen) furthest = Math.max(furthest, MAIN.indexOf(state));
  if (status === "hash_mismatch") return ["new", "copying", "hash_mismatch"];
  if (status === "validation_failed") return ["new", "copying", "copied", "validating", "validation_failed"];
  if (CANCELLING.includes(status) || status === "deleting") {
    const tail = status === "deleting" ? ["deleting"] : CANCELLING.slice(0, CANCELLING.indexOf(status) + 1);
    return [...MAIN.slice(0, furthest + 1), ...tail];
  }
  return MAIN.slice(0, Math.max(furthest, MAIN.indexOf(status)) + 1);
}

function renderTimeline(status) {
  const list = byId("timeline");
  const states = timeline(status);
  list.replaceChildren(
    ...states.map((state) => {
      const current = state === status;
      return h(
        "li",
        { class: current ? "current" : "passed", "aria-current": current ? "step" : null, "data-state": state },
        state,
      );
    }),
  );
}

function fillList(list, pairs) {
  list.replaceChildren(...pairs.map(([label, value, id]) => h("div", {}, h("dt", {}, label), h("dd", { id }, value))));
}

function render(batch) {
  byId("loading").hidden = true;
  byId("found").hidden = false;
  const status = byId("status");
  status.textContent = batch.status;
  status.className = `status bulk-${batch.status}`;
  renderTimeline(batch.status);
  const lines = batch.lines ?? { total: null, done: 0, failed: 0 };
  fillList(byId("counts"), [
    ["lines", lines.total === null ? "—" : lines.total.toLocaleString("en"), "lines-total"],
    ["done", lines.done.toLocaleString("en"), "lines-done"],
    ["failed", lines.failed.toLocaleString("en"), "lines-failed"],
  ]);
  fillList(byId("times"), [
    ["created", when(new Date(batch.created_ts * 1000).toISOString()), "time-created"],
    ["updated", when(new Date(batch.updated_ts * 1000).toISOString()), "time-updated"],
    ["hash", batch.hash ?? "—", "batch-hash"],
  ]);
  const final = FINAL.has(batch.status);
  byId("download").hidden = !(final && batch.status !== "hash_mismatch" && permits(identity, "get_data"));
  byId("cancel").hidden = !(CANCELLABLE.has(batch.status) && permits(identity, "update_batch"));
  byId("delete").hidden = !permits(identity, "delete_batch");
}

/** The results file's bytes (through the temporary link; the key never enters a URL). */
async function results() {
  const answer = await api(`${path}?download=true`);
  if (!answer.download) throw new Error("The batch has no results file yet.");
  const response = await fetch(answer.download.url, {
    cache: "no-cache",
    credentials: "omit",
    redirect: "error",
    referrerPolicy: "no-referrer",
  });
  if (!response.ok) throw new Error(`The results could not be read (HTTP ${response.status}).`);
  return response.blob();
}

async function showInvalid() {
  invalidShown = true;
  const section = byId("invalid");
  section.hidden = false;
  const note = byId("invalid-note");
  if (!permits(identity, "get_data")) {
    note.textContent = "This key's role may not read the results file that names the invalid lines.";
    return;
  }
  const text = await (await results()).text();
  const invalid = text
    .split("\n")
    .filter((line) => line.trim())
    .map((line) => JSON.parse(line))
    .filter((entry) => entry.status === "INVALID");
  note.textContent =
    invalid.length > SHOWN_INVALID
      ? `${invalid.length.toLocaleString("en")} invalid lines; the first ${SHOWN_INVALID} are shown (download the results for all).`
      : `${invalid.length.toLocaleString("en")} invalid line(s). Nothing ran: fix them and submit the file again.`;
  byId("invalid-lines")
    .querySelector("tbody")
    .replaceChildren(
      ...invalid.slice(0, SHOWN_INVALID).map((entry) =>
        h(
          "tr",
          {},
          h("td", {}, entry.line === 0 ? "file" : String(entry.line)),
          h("td", {}, entry.error?.code ?? ""),
          h("td", {}, entry.error?.message ?? ""),
          h("td", {}, entry.error?.description ?? ""),
        ),
      ),
    );
}

async function step() {
  timer = null;
  if (document.hidden) {
    document.addEventListener("visibilitychange", step, { once: true }); // nothing asked meanwhile
    return;
  }
  let wait = INTERVAL;
  let more = true;
  try {
    const response = await api(path, { raw: true });
    const batch = await response.json();
    clearError();
    render(batch);
    const retry = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
    if (retry > 0) wait = Math.max(INTERVAL, Math.min(retry, 300) * 1000);
    more = !FINAL.has(batch.status);
    if (batch.status === "validation_failed" && !invalidShown) await showInvalid();
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      showNotFound("Bulk batch not found · querybatch console");
      return;
    }
    if (error instanceof ApiError && error.status === 401) {
      location.assign(`${consolePath}/sign-in`);
      return;
    }
    if (error instanceof ApiError && error.status === 429) {
      wait = Math.max(INTERVAL, Math.min(error.retryAfter ?? 10, 300) * 1000);
    }
    showError(error);
  }
  if (more) timer = setTimeout(step, wait);
}

function again() {
  if (timer !== null) clearTimeout(timer);
  step();
}

function confirmed(dialogId, action) {
  const dialog = byId(dialogId);
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "confirm") return;
    dialog.returnValue = "";
    try {
      await action();
    } catch (error) {
      showError(error);
    }
  });
  return () => dialog.showModal();
}

function wireActions() {
  const message = byId("action-message");
  byId("cancel").addEventListener(
    "click",
    confirmed("confirm-cancel", async () => {
      await api(path, { method: "PATCH", body: { status: "cancel" } });
      message.textContent = "Cancelling: unfinished lines stop; finished ones keep their results.";
      again();
    }),
  );
  byId("delete").addEventListener(
    "click",
    confirmed("confirm-delete", async () => {
      await api(path, { method: "DELETE" });
      if (timer !== null) clearTimeout(timer);
      location.assign(`${consolePath}/bulk`);
    }),
  );
  const download = byId("download");
  download.addEventListener("click", async () => {
    download.disabled = true;
    message.textContent = "Preparing the results…";
    try {
      const blob = await results();
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: `${batchId}.jsonl` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      message.textContent = `Saved ${batchId}.jsonl (${blob.size.toLocaleString("en")} bytes).`;
    } catch (error) {
      message.textContent = "";
      showError(error);
    } finally {
      download.disabled = false;
    }
  });
}

identity = await startPage();
if (identity) {
  wireActions();
  step();
}
