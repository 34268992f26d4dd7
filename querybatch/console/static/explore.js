// The query explorer: pick a data source, accounts, fields, dates and a filter; run the query
// through GET /query/data/json (polling its status, as Retry-After says, while it runs);
// show the first 1,000 rows, a chart of the metrics by date, and the query as a curl
// command, an SDK call and a batch body.
import { ApiError, api, apiBase, byId, clearError, h, startPage } from "./console.js";
import { batchText, curlText, queryParams, sdkText } from "./explore_copy.js";

const SHOWN_ROWS = 1000;
const SHOWN_ACCOUNTS = 300;
const SYNC_SECONDS = 5; // how long the first request waits for the rows before polling
const COLOURS = ["#1f5fbf", "#a4161a", "#176b35", "#8a4f00", "#6b2c91", "#006d77"];

const form = byId("explore");
const origin = location.origin + apiBase;

let accounts = []; // {account_id, account_name, group_name} of the chosen source
let fields = []; // the chosen source's fields
const chosenAccounts = new Set();
let run = 0; // the current run; an older one stops when it sees a newer number
let chart = null;

function isoDay(date) {
  return date.toISOString().slice(0, 10);
}

/** The query the form describes, in the API's names. */
function query() {
  const chosen = (box) =>
    [...byId(box).querySelectorAll("input:checked")].map((input) => input.value);
  const rows = Number.parseInt(byId("max-rows").value, 10);
  return {
    ds_id: byId("source").value,
    ds_accounts: accounts.map((a) => a.account_id).filter((id) => chosenAccounts.has(id)),
    fields: [...chosen("dimensions"), ...chosen("metrics")],
    date_range_type: byId("range-type").value,
    start_date: byId("start-date").value,
    end_date: byId("end-date").value,
    filter: byId("filter").value.trim(),
    max_rows: Number.isNaN(rows) ? 1000 : Math.min(Math.max(rows, 1), 1_000_000),
  };
}

function showCopies() {
  const current = query();
  byId("copy-curl").textContent = curlText(current, origin);
  byId("copy-sdk").textContent = sdkText(current, origin);
  byId("copy-batch").textContent = batchText(current);
}

function showApiError(error) {
  const target = byId("run-error");
  if (error instanceof ApiError) {
    const detail = error.description ? `: ${error.description}` : "";
    target.textContent = `${error.message}${detail} (${error.code})`;
  } else {
    target.textContent = String(error);
  }
  target.hidden = false;
}

function renderAccounts() {
  const needle = byId("account-filter").value.trim().toLowerCase();
  const matching = accounts.filter((a) =>
    [a.account_id, a.account_name, a.group_name].some((text) =>
      (text ?? "").toLowerCase().includes(needle),
    ),
  );
  const shown = matching.slice(0, SHOWN_ACCOUNTS);
  byId("accounts").replaceChildren(
    ...shown.map((account) => {
      const box = h("input", {
        type: "checkbox",
        value: account.account_id,
        checked: chosenAccounts.has(account.account_id),
      });
      box.addEventListener("change", () => {
        if (box.checked) chosenAccounts.add(account.account_id);
        else chosenAccounts.delete(account.account_id);
        countAccounts();
        showCopies();
      });
      const group = account.group_name ? ` · ${account.group_name}` : "";
      return h(
        "label",
        {},
        box,
        `${account.account_name || account.account_id}${group} `,
        h("code", {}, account.account_id),
      );
    }),
  );
  byId("accounts-note").textContent =
    matching.length > shown.length
      ? `Showing ${shown.length} of ${matching.length.toLocaleString("en")} matching accounts; type to narrow.`
      : matching.length === 0
        ? "No account matches."
        : "";
  countAccounts();
}

function countAccounts() {
  byId("accounts-count").textContent = `(${chosenAccounts.size} of ${accounts.length} chosen)`;
}

function renderFields() {
  for (const [box, type] of [
    ["dimensions", "dim"],
    ["metrics", "met"],
  ]) {
    byId(box).replaceChildren(
      ...fields
        .filter((field) => field.field_type === type)
        .map((field) => {
          const input = h("input", { type: "checkbox", value: field.field_id });
          input.addEventListener("change", showCopies);
          return h("label", { title: field.description ?? "" }, input, `${field.field_name} `, h("code", {}, field.field_id));
        }),
    );
  }
}

/** Read the accounts and fields of the chosen data source. */
async function loadSource() {
  const dsId = byId("source").value;
  chosenAccounts.clear();
  accounts = [];
  fields = [];
  if (dsId) {
    const source = `ds_id=${encodeURIComponent(dsId)}`;
    try {
      const [logins, found] = await Promise.all([
        api(`/query/accounts?${source}`),
        api(`/query/fields?${source}`),
      ]);
      const seen = new Set();
      for (const login of logins.data) {
        for (const account of login.accounts) {
          if (!seen.has(account.account_id)) {
            seen.add(account.account_id);
            accounts.push(account);
          }
        }
      }
      fields = found.data;
    } catch (error) {
      showApiError(error);
    }
  }
  renderAccounts();
  renderFields();
  showCopies();
}

/** The server's data sources (``GET /query/sources``). */
async function loadSources() {
  const sources = await api("/query/sources");
  const ids = sources.data.map((source) => source.ds_id);
  byId("source").replaceChildren(...ids.map((id) => h("option", { value: id }, id)));
  if (ids.length === 0) byId("run-status").textContent = "This server has no data source.";
  await loadSource();
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** One GET /query/data/json: its JSON and how many seconds the server says to wait. */
async function ask(params) {
  const response = await api(`/query/data/json?${params}`, { raw: true });
  const wait = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  return { answer: await response.json(), wait: Number.isNaN(wait) ? 2 : wait };
}

/** Run the form's query until it ends; null when a newer run replaced it. */
async function execute(current, mine) {
  const page = `offset_start=0&offset_end=${SHOWN_ROWS - 1}`;
  let next = `${queryParams(current)}&sync_timeout=${SYNC_SECONDS}&${page}`;
  for (;;) {
    let answer;
    let wait;
    try {
      ({ answer, wait } = await ask(next));
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 429)) throw error;
      wait = error.retryAfter ?? 10;
    }
    if (mine !== run) return null;
    if (answer) {
      const status = answer.meta.status_code;
      if (status === "SUCCESS" || status === "FAILURE" || answer.meta.error) return answer;
      byId("run-status").textContent = `The query is ${status.toLowerCase()}; asking again in ${wait} s…`;
      const schedule = encodeURIComponent(answer.meta.schedule_id);
      next = `schedule_id=${schedule}&sync_timeout=0&${page}`;
    }
    await sleep(Math.min(Math.max(wait, 1), 60) * 1000);
    if (mine !== run) return null;
  }
}

function renderRows(answer) {
  const [header = [], ...rows] = answer.data;
  const total = answer.meta.result?.total_rows ?? rows.length;
  byId("result-note").textContent =
    total > rows.length
      ? `${total.toLocaleString("en")} rows; the first ${rows.length.toLocaleString("en")} are shown.`
      : `${total.toLocaleString("en")} rows.`;
  const table = byId("rows");
  table.tHead.replaceChildren(h("tr", {}, ...header.map((name) => h("th", { scope: "col" }, name))));
  table.tBodies[0].replaceChildren(
    ...rows.map((row) => h("tr", {}, ...row.map((cell) => h("td", {}, cell ?? "")))),
  );
  byId("result").hidden = false;
  return total;
}

/** A line per chosen metric over the date dimension, summed per date; hidden without one. */
function renderChart(answer) {
  const card = byId("chart-card");
  const columns = answer.meta.query?.fields ?? [];
  const date = columns.find((f) => f.field_type === "dim" && f.data_type === "date");
  const metrics = columns.filter((f) => f.field_type === "met");
  if (chart !== null) {
    chart.destroy();
    chart = null;
  }
  card.hidden = !date || metrics.length === 0 || typeof uPlot === "undefined";
  if (card.hidden) return;
  const sums = new Map(); // epoch seconds -> one sum per metric
  for (const row of answer.data.slice(1)) {
    const day = Date.parse(`${row[date.data_column]}T00:00:00Z`);
    if (Number.isNaN(day)) continue;
    const values = sums.get(day / 1000) ?? metrics.map(() => 0);
    metrics.forEach((metric, index) => {
      values[index] += Number.parseFloat(row[metric.data_column]) || 0;
    });
    sums.set(day / 1000, values);
  }
  const days = [...sums.keys()].sort((a, b) => a - b);
  const data = [days, ...metrics.map((_, index) => days.map((day) => sums.get(day)[index]))];
  const element = byId("chart");
  chart = new uPlot(
    {
      width: element.clientWidth || 800,
      height: 260,
      scales: { x: { time: true } },
      series: [
        {},
        ...metrics.map((metric, index) => ({
          label: metric.field_name,
          stroke: COLOURS[index % COLOURS.length],
          width: 2,
        })),
      ],
    },
    data,
    element,
  );
}

async function submit(event) {
  event.preventDefault();
  const mine = ++run;
  const current = query();
  clearError(byId("run-error"));
  clearError();
  const status = byId("run-status");
  status.textContent = "Running…";
  byId("run").disabled = true;
  try {
    const answer = await execute(current, mine);
    if (answer === null) return;
    if (answer.meta.status_code !== "SUCCESS") {
      const error = answer.meta.error ?? {};
      throw new ApiError(200, error.code ?? answer.meta.status_code, error.message ?? "The query failed", error.description ?? "");
    }
    const total = renderRows(answer);
    renderChart(answer);
    status.textContent = `Done: ${total.toLocaleString("en")} rows.`;
  } catch (error) {
    if (mine !== run) return;
    status.textContent = "";
    showApiError(error);
  } finally {
    if (mine === run) byId("run").disabled = false;
  }
}

async function copy(button) {
  const text = byId(button.dataset.copy).textContent;
  const message = byId("copy-message");
  try {
    await navigator.clipboard.writeText(text);
    message.textContent = "Copied.";
  } catch {
    const range = document.createRange();
    range.selectNodeContents(byId(button.dataset.copy));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    message.textContent = "The browser did not allow copying: the text is selected, press Ctrl+C.";
  }
}

function wire() {
  const today = new Date();
  byId("start-date").value = isoDay(new Date(today.getTime() - 7 * 86_400_000));
  byId("end-date").value = isoDay(new Date(today.getTime() - 86_400_000));
  const fixed = () => {
    byId("fixed-dates").hidden = byId("range-type").value !== "custom";
  };
  byId("range-type").addEventListener("change", () => {
    fixed();
    showCopies();
  });
  fixed();
  byId("source").addEventListener("change", loadSource);
  byId("account-filter").addEventListener("input", renderAccounts);
  // Enter in the account filter narrows the list; it does not run the query.
  byId("account-filter").addEventListener("keydown", (event) => {
    if (event.key === "Enter") event.preventDefault();
  });
  for (const id of ["start-date", "end-date", "filter", "max-rows"]) {
    byId(id).addEventListener("input", showCopies);
    byId(id).addEventListener("change", showCopies);
  }
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", () => copy(button));
  }
  form.addEventListener("submit", submit);
}

const identity = await startPage();
if (identity) {
  wire();
  try {
    await loadSources();
  } catch (error) {
    showApiError(error);
  }
}
