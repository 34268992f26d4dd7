// The sub-query table of a batch page: pages of the public status route, optionally only the
// sub-queries of one status, account or date (found by reading the pages in order, a bounded
// stretch at a time).
import { api, h, permits, saveAs, showError, when } from "./console.js";

const PAGE = 100;
const SCAN_PAGE = 1000;
const SCAN_BUDGET = 20_000; // sub-queries read for one filtered page at most

export class SubQueries {
  constructor(path, identity) {
    this.path = path;
    this.readsRows = permits(identity, "get_query_results") && permits(identity, "get_data");
    this.filter = null; // {status, account, date}, or null for every sub-query
    this.offset = 0; // where this page starts (or its scan starts)
    this.starts = []; // earlier filtered pages' scan starts, for "Previous"
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
      this.offset = this.filter ? (this.starts.pop() ?? 0) : Math.max(0, this.offset - PAGE);
      this.reload();
    });
    this.next.addEventListener("click", () => {
      if (this.filter) this.starts.push(this.offset);
      this.offset = this.end;
      this.reload();
    });
  }

  /** Read the filter from the form and show its first page. */
  apply() {
    const status = document.getElementById("status-filter").value;
    const account = document.getElementById("account-filter").value.trim().toLowerCase();
    const date = document.getElementById("date-filter").value;
    this.filter = status || account || date ? { status, account, date } : null;
    this.offset = 0;
    this.starts = [];
    this.reload();
  }

  matches(item) {
    const { status, account, date } = this.filter;
    const split = item.split_info ?? {};
    if (status && item.status_code !== status) return false;
    if (account && !(split.ds_accounts ?? []).some((a) => a.toLowerCase().includes(account))) {
      return false;
    }
    return !date || (split.start_date <= date && date <= split.end_date);
  }

  describe() {
    const { status, account, date } = this.filter;
    const parts = [status, account && `account ${account}`, date && `on ${date}`];
    return parts.filter(Boolean).join(", ");
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
    const rows = this.filter ? await this.scan() : await this.page();
    this.fill(rows);
    this.previous.disabled = this.offset === 0;
    this.next.disabled = this.end >= this.total;
  }

  async page() {
    const answer = await api(`${this.path}/status?offset=${this.offset}&limit=${PAGE}`);
    this.total = answer.meta.paginate.total;
    this.end = this.offset + answer.data.length;
    this.info.textContent = answer.data.length
      ? `Sub-queries ${this.offset + 1}–${this.end} of ${this.total.toLocaleString("en")}`
      : "No sub-queries on this page.";
    return answer.data.map((item, index) => [this.offset + index, item]);
  }

  async scan() {
    const rows = [];
    let at = this.offset;
    this.total = Number.POSITIVE_INFINITY;
    while (rows.length < PAGE && at < this.total && at - this.offset < SCAN_BUDGET) {
      const answer = await api(`${this.path}/status?offset=${at}&limit=${SCAN_PAGE}`);
      this.total = answer.meta.paginate.total;
      if (answer.data.length === 0) break;
      let read = answer.data.length;
      for (const [index, item] of answer.data.entries()) {
        if (!this.matches(item)) continue;
        rows.push([at + index, item]);
        if (rows.length === PAGE) {
          read = index + 1;
          break;
        }
      }
      at += read;
    }
    this.end = Math.min(at, this.total);
    const total = this.total.toLocaleString("en");
    const found = `${rows.length} ${rows.length === 1 ? "sub-query" : "sub-queries"}`;
    this.info.textContent =
      `${found} (${this.describe()}) among ${this.offset + 1}–${this.end} of ${total}` +
      (this.end < this.total ? "; the next page reads on" : "");
    return rows;
  }

  fill(rows) {
    const body = this.table.tBodies[0];
    const focused = document.activeElement?.closest?.("#queries [data-schedule-id]");
    const keep = focused?.dataset.scheduleId;
    body.replaceChildren(...rows.map(([position, item]) => this.row(position, item)));
    if (keep) body.querySelector(`[data-schedule-id="${CSS.escape(keep)}"]`)?.focus();
  }

  row(position, item) {
    const split = item.split_info ?? {};
    const dates =
      split.start_date === split.end_date ? split.start_date : `${split.start_date} – ${split.end_date}`;
    return h(
      "tr",
      {},
      h("td", { class: "figure" }, String(position + 1)),
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
