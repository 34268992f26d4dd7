// One query batch: live progress (polled every 2 s until it stops), counts, a chart of
// sub-queries finished over time, failures grouped by reason, the sub-query table with a
// status filter and paging, downloads, and cancel with a confirmation.
import {
  api,
  ApiError,
  byId,
  clearError,
  finished,
  h,
  permits,
  poll,
  progressText,
  saveAs,
  showError,
  showNotFound,
  startPage,
  when,
} from "./console.js";
import { Failures } from "./failures.js";
import { SubQueries } from "./subqueries.js";

const root = document.getElementById("batch");
const batchId = root.dataset.batchId;
const path = `/query/batch/${encodeURIComponent(batchId)}`;
const COUNTS = ["queued", "running", "success", "failure", "stopped"];
const RATE_WINDOW_MS = 60_000;

const samples = [[], []]; // seconds since the epoch, sub-queries finished
let chart = null;
let seen = "";

/** A definition list of ``pairs`` ([label, value, id]) in ``list``, kept in place. */
function fillList(list, pairs) {
  for (const [label, value, id] of pairs) {
    let dd = byId(id);
    if (!dd) {
      dd = h("dd", { id });
      list.append(h("div", {}, h("dt", {}, label), dd));
    }
    dd.textContent = value;
  }
}

/** Add a point to the chart: the batch's start (none finished) first, its end last. */
function sample(batch, done) {
  const [times, values] = samples;
  const started = Date.parse(batch.start_time ?? "");
  if (times.length === 0 && !Number.isNaN(started)) {
    times.push(started / 1000);
    values.push(0);
  }
  const ended = Date.parse(batch.end_time ?? "");
  const at = (Number.isNaN(ended) ? Date.now() : ended) / 1000;
  if (times.length > 0 && at <= times.at(-1)) {
    values[values.length - 1] = done; // the same moment (or a clock behind): update it
    return;
  }
  times.push(at);
  values.push(done);
}

function rateText(batch, done, total) {
  const now = samples[0].at(-1);
  const index = samples[0].findIndex((t) => t >= now - RATE_WINDOW_MS / 1000);
  const seconds = now - samples[0][index];
  if (batch.status_code === "STOPPED") {
    const took = now - samples[0][0];
    return took > 0 && samples[0].length > 1 ? `· finished in ${duration(took)}` : "";
  }
  if (seconds < 3) return "";
  const perSecond = (done - samples[1][index]) / seconds;
  if (perSecond <= 0) return "· no sub-query finished in the last minute";
  const left = (total - done) / perSecond;
  const rate = Math.round(perSecond * 60).toLocaleString("en");
  return `· ${rate} sub-queries a minute, about ${duration(left)} left`;
}

/** "12 s", "3 min", "2 h 5 min" */
function duration(seconds) {
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 120 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function drawChart() {
  const element = byId("chart");
  if (typeof uPlot === "undefined" || element.clientWidth === 0) return;
  if (chart === null) {
    chart = new uPlot(
      {
        width: element.clientWidth,
        height: 220,
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max, 1)] } },
        series: [{}, { label: "finished", stroke: "#1f5fbf", fill: "rgba(31, 95, 191, 0.12)" }],
        axes: [{}, { label: "sub-queries" }],
      },
      samples,
      element,
    );
    window.addEventListener("resize", () => chart.setSize({ width: element.clientWidth, height: 220 }));
  } else {
    chart.setData(samples);
  }
}

function render(batch, identity) {
  byId("loading").hidden = true;
  byId("found").hidden = false;
  byId("description").textContent = batch.description;
  byId("description").hidden = !batch.description;
  const { done, total } = finished(batch.progress);
  sample(batch, done);
  const bar = byId("progress");
  bar.max = Math.max(total, 1);
  bar.value = done;
  byId("progress-text").textContent = progressText(done, total);
  const status = byId("status");
  status.textContent = batch.status_code;
  status.className = `status status-${batch.status_code}`;
  byId("rate").textContent = rateText(batch, done, total);
  fillList(
    byId("counts"),
    COUNTS.map((name) => [name, batch.progress[name].toLocaleString("en"), `count-${name}`]),
  );
  fillList(byId("times"), [
    ["created", when(batch.created_time), "time-created"],
    ["started", when(batch.start_time), "time-started"],
    ["ended", when(batch.end_time), "time-ended"],
    ["cancelled", when(batch.cancel_time), "time-cancelled"],
    ["concurrency", String(batch.query_concurrency), "setting-concurrency"],
  ]);
  byId("cancel").hidden = batch.status_code === "STOPPED" || !permits(identity, "cancel_query_batch");
  byId("downloads").hidden =
    !permits(identity, "download_query_batch") || !permits(identity, "get_data");
  drawChart();
}

function wireActions(poller) {
  const dialog = byId("confirm-cancel");
  byId("cancel").addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", async () => {
    if (dialog.returnValue !== "cancel") return;
    dialog.returnValue = "";
    const message = byId("action-message");
    try {
      await api(path, { method: "DELETE" });
      message.textContent = "Cancelled: nothing new starts; the results collected so far are kept.";
      poller.now();
    } catch (error) {
      showError(error);
    }
  });
  for (const button of byId("downloads").querySelectorAll("button")) {
    button.addEventListener("click", async () => {
      const format = button.dataset.format;
      const message = byId("action-message");
      button.disabled = true;
      message.textContent = `Preparing ${format}…`;
      try {
        const size = await saveAs(`${path}/download?format=${format}`, `${batchId}.${format}`);
        message.textContent = `Saved ${batchId}.${format} (${size.toLocaleString("en")} bytes).`;
      } catch (error) {
        message.textContent = "";
        showError(error);
      } finally {
        button.disabled = false;
      }
    });
  }
}

const identity = await startPage();
if (identity) {
  const queries = new SubQueries(path, identity);
  const failures = new Failures(path);
  const poller = poll(async () => {
    let batch;
    try {
      batch = (await api(path)).data;
    } catch (error) {
      if (error instanceof ApiError && (error.status === 404 || error.code === "NOT_FOUND")) {
        showNotFound("Query batch not found · querybatch console");
        return false;
      }
      throw error;
    }
    clearError();
    render(batch, identity);
    const state = JSON.stringify([batch.status_code, batch.progress]);
    if (state !== seen) {
      seen = state;
      await queries.refresh(batch);
      await failures.refresh(batch);
    }
    return batch.status_code !== "STOPPED";
  }, 2000);
  wireActions(poller);
}
