// The sub-query table of a batch page: pages of the public status route, optionally only the
// sub-queries of one status, account or date (the route filters them: see docs/batches.md).
import { api, h, permits, saveAs, showError, when } from "./console.js";

const PAGE = 100;

export class SubQueries {
  constructor(path, identity) {
    this.path = path;
    this.readsRows = permits(identity, "get_query_results") && permits(identity, "get_data");
    this.filter = null; // {status, account, date}, or null for every sub-query
    this.offset = 0; // where this page starts, among the sub-queries the filter keeps
    this.end = 0; // where the next page starts
    this.total = 0;
    this.batch = null;
    this.table = document.getElementById("queries");
    this.info = document.getElementById("page-info");
    this.previous = document.getElementById("previous");
    this.next = document.getElementById("next");
    const form = document.getElementById("query-filter");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.apply();
    });
    for (const input of form.querySelectorAll("select, input")) {
      input.addEventListener("change", () => this.apply());
    }
    this.previous.addEventListener("click", () => {
      this.offset = Math.max(0, this.offset - PAGE);
      this.reload();
    });
    this.next.addEventListener("click", () => {
      this.offset = this.end;
      this.reload();
    });
  }

  /** Read the filter from the form and show its first page. */
  apply() {
    const status = document.getElementById("status-filter").value;
    const account = document.getElementById("account-filter").value.trim();
    const date = document.getElementById("date-filter").value;
    this.filter = status || account || date ? { status, account, date } : null;
    this.offset = 0;
    this.reload();
  }

  describe() {
    const { status, account, date } = this.filter;
    const parts = [status, account && `account ${account}`, date && `on ${date}`];
    return parts.filter(Boolean).join(", ");
  }

  query() {
    const params = new URLSearchParams({ offset: String(this.offset), limit: String(PAGE) });
    for (const [name, value] of Object.entries(this.filter ?? {})) {
      if (value) params.set(name, value);
    }
    return params;
  }

  async reload() {
    try {
      await this.refresh(this.batch);
    } catch (error) {
      showError(error);
    }
  }

  /** Read the current page again (the batch changed, or the page or filter did). */
  async refresh(batch) {
    this.batch = batch;
    const answer = await api(`${this.path}/status?${this.query()}`);
    this.total = answer.meta.paginate.total;
    this.end = this.offset + answer.data.length;
    this.info.textContent = this.filter ? this.filtered(answer.data.length) : this.plain(answer.data.length);
    this.fill(answer.data);
    this.previous.disabled = this.offset === 0;
    this.next.disabled = this.end >= this.total;
  }

  plain(shown) {
    return shown
      ? `Sub-queries ${this.offset + 1}–${this.end} of ${this.total.toLocaleString("en")}`
      : "No sub-queries on this page.";
  }

  filtered(shown) {
    const count = `${this.total.toLocaleString("en")} ${this.total === 1 ? "sub-query" : "sub-queries"}`;
    const range = shown ? `, ${this.offset + 1}–${this.end} shown` : "";
    return `${count} (${this.describe()})${range}`;
  }

  fill(rows) {
    const body = this.table.tBodies[0];
    const focused = document.activeElement?.closest?.("#queries [data-schedule-id]");
    const keep = focused?.dataset.scheduleId;
    body.replaceChildren(...rows.map((item) => this.row(item)));
    if (keep) body.querySelector(`[data-schedule-id="${CSS.escape(keep)}"]`)?.focus();
  }

  row(item) {
    const split = item.split_info ?? {};
    // A sub-query's schedule id ends with its position in the batch.
    const position = /_(\d+)$/.exec(item.schedule_id)?.[1] ?? "—";
    const dates =
      split.start_date === split.end_date ? split.start_date : `${split.start_date} – ${split.end_date}`;
    return h(
      "tr",
      {},
      h("td", { class: "figure" }, position),
      h("td", { class: `status status-${item.status_code}` }, item.status_code),
      h("td", {}, (split.ds_accounts ?? []).join(", ")),
      h("td", { class: "figure" }, dates ?? "—"),
      h("td", {}, when(item.query_start_time)),
      h("td", {}, when(item.query_end_time)),
      h("td", {}, this.result(item)),
    );
  }

  result(item) {
    if (item.error_info) return `${item.error_info.code}: ${item.error_info.message}`;
    if (!item.result_info) return "—";
    const count = item.result_info.total_rows;
    const rows = `${count.toLocaleString("en")} ${count === 1 ? "row" : "rows"}`;
    if (!this.readsRows) return rows;
    const button = h(
      "button",
      { type: "button", class: "secondary", "data-schedule-id": item.schedule_id },
      `Save ${rows}`,
    );
    button.addEventListener("click", () =>
      saveAs(
        `/query/results?schedule_id=${encodeURIComponent(item.schedule_id)}`,
        `${item.schedule_id}.json`,
      ).catch(showError),
    );
    return button;
  }
}
