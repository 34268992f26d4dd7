// Overview: the account's query batches, running ones first, refreshed every 2 s.
import { api, apiBase, clearError, consolePath, finished, h, poll, progressText, startPage, when } from "./console.js";

const LISTED = 50;
const HEALTH_EVERY_MS = 10_000;
let healthRead = Number.NEGATIVE_INFINITY;
const rows = new Map();

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

/** Put ``batches``' rows in ``table`` in this order, moving only rows out of place. */
function place(table, batches) {
  const body = table.tBodies[0];
  const wanted = batches.map(rowOf);
  wanted.forEach((row, index) => {
    if (body.children[index] !== row) body.insertBefore(row, body.children[index] ?? null);
  });
  while (body.children.length > wanted.length) body.lastElementChild.remove();
  document.getElementById(`${table.id}-empty`).hidden = wanted.length > 0;
  table.hidden = wanted.length === 0;
}

/** The server's queue depth and workers (``/healthz``, which needs no key), every 10 s. */
async function health() {
  if (performance.now() - healthRead < HEALTH_EVERY_MS) return;
  healthRead = performance.now();
  const response = await fetch(`${apiBase}/healthz`, { cache: "no-cache", credentials: "omit" });
  const answer = await response.json();
  document.getElementById("queued").textContent = answer.queued.toLocaleString("en");
  document.getElementById("workers").textContent = answer.workers.alive.toLocaleString("en");
  document.getElementById("health").textContent = answer.status;
}

async function refresh() {
  await health();
  const listed = await api(`/query/batch?limit=${LISTED}`);
  clearError();
  const batches = listed.data;
  place(document.getElementById("running"), batches.filter((b) => b.status_code !== "STOPPED"));
  place(document.getElementById("recent"), batches.filter((b) => b.status_code === "STOPPED"));
  const seen = new Set(batches.map((b) => b.batch_id));
  for (const id of rows.keys()) if (!seen.has(id)) rows.delete(id);
  document.getElementById("refreshed").textContent =
    `The ${LISTED} newest batches, updated ${new Date().toLocaleTimeString("en-GB")}.`;
}

const identity = await startPage();
if (identity) poll(refresh, 2000);
