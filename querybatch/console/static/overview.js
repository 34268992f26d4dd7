// Overview: the account's query batches (running ones first, refreshed every 2 s), its
// bulk batches (every 5 s), sub-queries finished per minute and failures by reason over the
// last hour (every 20 s), and the server's queue depth and workers (every 10 s). Nothing is
// asked while the tab is hidden.
import {
  api,
  apiBase,
  ApiError,
  byId,
  clearError,
  consolePath,
  finished,
  h,
  permits,
  poll,
  progressText,
  startPage,
  when,
} from "./console.js";

const LISTED = 50;
const BULK_LISTED = 20;
const ACTIVITY_MINUTES = 60;
const CHART_HEIGHT = 220;
// Bulk statuses after which nothing more happens to a batch (domain/bulk.py).
const BULK_FINAL = new Set(["hash_mismatch", "validation_failed", "completed", "cancelled"]);
const rows = new Map();
const bulkRows = new Map();
const bulkFinal = new Map(); // id -> the answer of a batch that has ended (read once)
let chart = null;
let readsLines = false; // whether the key may read a bulk batch (its line counts)

/** The row of ``batch``, made once and updated in place (focus and links survive). */
function rowOf(batch) {
  let row = rows.get(batch.batch_id);
  if (!row) {
    const link = h("a", { href: `${consolePath}/batches/${encodeURIComponent(batch.batch_id)}` });
    link.append(h("code", {}, batch.batch_id));
    const bar = h("progress", { max: 1, value: 0, "aria-label": `Progress of ${batch.batch_id}` });
    row = h(
      "tr",
      { "data-batch-id": batch.batch_id },
      h("td", {}, link),
      h("td", { class: "description" }),
      h("td", { class: "status" }),
      h("td", {}, h("div", { class: "bar" }, bar, h("span", { class: "figure" }))),
      h("td", {}),
    );
    rows.set(batch.batch_id, row);
  }
  const [, description, status, progress, created] = row.cells;
  const { done, total } = finished(batch.progress);
  description.textContent = batch.description;
  status.textContent = batch.status_code;
  status.className = `status status-${batch.status_code}`;
  const bar = progress.querySelector("progress");
  bar.max = Math.max(total, 1);
  bar.value = done;
  progress.querySelector(".figure").textContent = progressText(done, total);
  created.textContent = when(batch.created_time);
  return row;
}

/** Put ``wanted`` rows in ``table`` in this order, moving only rows out of place. */
function place(table, wanted) {
  const body = table.tBodies[0];
  wanted.forEach((row, index) => {
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] ?? null);
  });
  while (body.children.length > wanted.length) body.lastElementChild.remove();
  byId(`${table.id}-empty`).hidden = wanted.length > 0;
  table.hidden = wanted.length === 0;
}

/** The server's queue depth and workers (``/healthz``, which needs no key). */
async function health() {
  const response = await fetch(`${apiBase}/healthz`, { cache: "no-cache", credentials: "omit" });
  const answer = await response.json();
  byId("queued").textContent = answer.queued.toLocaleString("en");
  byId("workers").textContent = answer.workers.alive.toLocaleString("en");
  byId("health").textContent = answer.status;
}

async function refreshBatches() {
  const listed = await api(`/query/batch?limit=${LISTED}`);
  clearError();
  const batches = listed.data;
  place(byId("running"), batches.filter((b) => b.status_code !== "STOPPED").map(rowOf));
  place(byId("recent"), batches.filter((b) => b.status_code === "STOPPED").map(rowOf));
  const seen = new Set(batches.map((b) => b.batch_id));
  for (const id of rows.keys()) if (!seen.has(id)) rows.delete(id);
  byId("refreshed").textContent =
    `The ${LISTED} newest query batches, updated ${new Date().toLocaleTimeString("en-GB")}.`;
}

/** The row of bulk batch ``batch`` (an answer of ``GET /batches/{id}``), kept in place. */
function bulkRowOf(batch) {
  let row = bulkRows.get(batch.batch);
  if (!row) {
    const link = h("a", { href: `${consolePath}/bulk/${encodeURIComponent(batch.batch)}` });
    link.append(h("code", {}, batch.batch));
    const bar = h("progress", { max: 1, "aria-label": `Lines done of ${batch.batch}` });
    row = h(
      "tr",
      { "data-bulk-id": batch.batch },
      h("td", {}, link),
      h("td", { class: "status" }),
      h("td", {}, h("div", { class: "bar" }, bar, h("span", { class: "figure" }))),
      h("td", {}),
    );
    bulkRows.set(batch.batch, row);
  }
  const [, status, progress, created] = row.cells;
  status.textContent = batch.status;
  status.className = `status bulk-${batch.status}`;
  const bar = progress.querySelector("progress");
  const figure = progress.querySelector(".figure");
  const lines = batch.lines ?? { total: null, done: 0, failed: 0 };
  if (!batch.lines && !readsLines) {
    bar.hidden = true;
    figure.textContent = "—";
  } else if (lines.total === null) {
    bar.removeAttribute("value"); // not counted yet: an indeterminate bar
    figure.textContent = "not counted yet";
  } else {
    bar.max = Math.max(lines.total, 1);
    bar.value = lines.done;
    const failed = lines.failed ? ` · ${lines.failed.toLocaleString("en")} failed` : "";
    figure.textContent = progressText(lines.done, lines.total) + failed;
  }
  created.textContent = batch.created_ts ? when(new Date(batch.created_ts * 1000).toISOString()) : "—";
  return row;
}

/** The newest bulk batches; each one read until it has ended, then kept. */
async function refreshBulk() {
  const now = Math.ceil(Date.now() / 1000);
  // With both ge and le the list is newest first; le a day ahead allows for a clock behind.
  const listed = await api(`/batches?ge=0&le=${now + 86_400}&limit=${BULK_LISTED}`);
  const ids = Object.keys(listed.batches);
  const read = async (id) => {
    if (!readsLines) return { batch: id, status: listed.batches[id], created_ts: null };
    try {
      return bulkFinal.get(id) ?? (await api(`/batches/${encodeURIComponent(id)}`));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null; // deleted meanwhile
      throw error;
    }
  };
  const answers = (await Promise.all(ids.map(read))).filter((answer) => answer !== null);
  for (const answer of answers) {
    if (readsLines && BULK_FINAL.has(answer.status)) bulkFinal.set(answer.batch, answer);
  }
  place(byId("bulk"), answers.map(bulkRowOf));
  const seen = new Set(ids);
  for (const id of bulkRows.keys()) if (!seen.has(id)) bulkRows.delete(id);
  for (const id of bulkFinal.keys()) if (!seen.has(id)) bulkFinal.delete(id);
}

function drawChart(perMinute) {
  const element = byId("activity-chart");
  const data = [
    perMinute.map((m) => Date.parse(m.minute) / 1000),
    perMinute.map((m) => m.success),
    perMinute.map((m) => m.failure),
  ];
  // How many minutes have a point above zero (said in the page, for tools and tests).
  element.dataset.minutesWithActivity = String(perMinute.filter((m) => m.success + m.failure).length);
  if (typeof uPlot === "undefined" || element.clientWidth === 0) return;
  if (chart === null) {
    chart = new uPlot(
      {
        width: element.clientWidth,
        height: CHART_HEIGHT,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max, 1)] } },
        series: [
          {},
          { label: "succeeded", stroke: "#176b35", fill: "rgba(23, 107, 53, 0.10)" },
          { label: "failed", stroke: "#a4161a", fill: "rgba(164, 22, 26, 0.10)" },
        ],
        axes: [{}, { label: "sub-queries a minute" }],
      },
      data,
      element,
    );
    window.addEventListener("resize", () =>
      chart.setSize({ width: element.clientWidth, height: CHART_HEIGHT }),
    );
  } else {
    chart.setData(data);
  }
}

function showReasons(failures, more) {
  const wanted = failures.map((group) =>
    h(
      "tr",
      {},
      h("td", {}, h("code", {}, group.error_code)),
      h("td", {}, group.error_message),
      h("td", { class: "figure" }, group.count.toLocaleString("en")),
      h("td", { class: "figure" }, group.batches.toLocaleString("en")),
    ),
  );
  byId("reasons").tBodies[0].replaceChildren(...wanted);
  byId("reasons").hidden = wanted.length === 0;
  byId("reasons-empty").hidden = wanted.length > 0;
  byId("reasons-more").hidden = !more;
}

async function refreshActivity() {
  const answer = await api(`/query/activity?minutes=${ACTIVITY_MINUTES}`);
  const perMinute = answer.data.per_minute;
  const sum = (name) => perMinute.reduce((total, m) => total + m[name], 0);
  const [success, failure, stopped] = [sum("success"), sum("failure"), sum("stopped")];
  const cancelled = stopped ? `, ${stopped.toLocaleString("en")} cancelled or timed out` : "";
  byId("activity-note").textContent =
    `${(success + failure + stopped).toLocaleString("en")} sub-queries finished in the last hour: ` +
    `${success.toLocaleString("en")} succeeded, ${failure.toLocaleString("en")} failed${cancelled}. ` +
    `Updated ${new Date().toLocaleTimeString("en-GB")}.`;
  drawChart(perMinute);
  showReasons(answer.data.failures, answer.data.more_failures);
}

/** Say in ``target`` that the key's role does not allow ``action``; hide ``hidden``. */
function notAllowed(target, action, ...hidden) {
  target.textContent = `This key's role does not allow ${action}.`;
  target.hidden = false;
  for (const element of hidden) element.hidden = true;
}

const identity = await startPage();
if (identity) {
  poll(refreshBatches, 2000);
  poll(health, 10_000);
  if (permits(identity, "get_query_batch_status")) {
    poll(refreshActivity, 20_000);
  } else {
    notAllowed(byId("activity-note"), "get_query_batch_status", byId("activity-chart"));
    notAllowed(byId("reasons-empty"), "get_query_batch_status", byId("reasons"));
  }
  if (permits(identity, "get_batches")) {
    readsLines = permits(identity, "get_batch");
    poll(refreshBulk, 5000);
  } else {
    notAllowed(byId("bulk-empty"), "get_batches", byId("bulk"));
  }
}
