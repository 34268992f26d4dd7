// A batch's failed sub-queries grouped by error code and message, with the accounts and dates
// they hit: read from the public status pages, at most SCAN_BUDGET sub-queries per look.
import { api, h } from "./console.js";

const SCAN_PAGE = 1000;
const SCAN_BUDGET = 20_000;
const EVERY_MS = 15_000; // while the batch runs, look again at most this often
const SHOWN = 5; // accounts named per group

export class Failures {
  constructor(path) {
    this.path = path;
    this.failures = 0;
    this.lookedAt = 0;
    this.table = document.getElementById("failures");
    this.note = document.getElementById("failures-note");
  }

  async refresh(batch) {
    const failures = batch.progress.failure;
    const stopped = batch.status_code === "STOPPED";
    if (failures === 0) {
      this.note.textContent = "No sub-query has failed.";
      this.table.hidden = true;
      return;
    }
    if (failures === this.failures) return;
    if (!stopped && performance.now() - this.lookedAt < EVERY_MS && this.lookedAt > 0) return;
    this.lookedAt = performance.now();
    this.failures = failures;
    const { groups, read, total } = await this.scan();
    this.show(groups);
    this.note.textContent =
      read < total
        ? `Grouped over the first ${read.toLocaleString("en")} of ${total.toLocaleString("en")} sub-queries.`
        : `${failures.toLocaleString("en")} failed sub-queries, grouped by reason.`;
  }

  async scan() {
    const groups = new Map();
    let read = 0;
    let total = Number.POSITIVE_INFINITY;
    while (read < total && read < SCAN_BUDGET) {
      const answer = await api(`${this.path}/status?offset=${read}&limit=${SCAN_PAGE}`);
      total = answer.meta.paginate.total;
      if (answer.data.length === 0) break;
      read += answer.data.length;
      for (const item of answer.data) {
        if (item.status_code !== "FAILURE" || !item.error_info) continue;
        const key = JSON.stringify([item.error_info.code, item.error_info.message]);
        const group = groups.get(key) ?? {
          code: item.error_info.code,
          message: item.error_info.message,
          count: 0,
          accounts: new Set(),
          first: null,
          last: null,
        };
        const split = item.split_info ?? {};
        group.count += 1;
        for (const account of split.ds_accounts ?? []) group.accounts.add(account);
        if (split.start_date && (!group.first || split.start_date < group.first)) group.first = split.start_date;
        if (split.end_date && (!group.last || split.end_date > group.last)) group.last = split.end_date;
        groups.set(key, group);
      }
    }
    return { groups: [...groups.values()].sort((a, b) => b.count - a.count), read, total };
  }

  show(groups) {
    const rows = groups.map((group) => {
      const accounts = [...group.accounts];
      const named = accounts.slice(0, SHOWN).join(", ");
      const more = accounts.length > SHOWN ? ` and ${accounts.length - SHOWN} more` : "";
      const dates = group.first ? `${group.first} – ${group.last}` : "—";
      return h(
        "tr",
        {},
        h("td", {}, h("code", {}, group.code)),
        h("td", {}, group.message),
        h("td", { class: "figure" }, group.count.toLocaleString("en")),
        h("td", {}, named + more),
        h("td", { class: "figure" }, dates),
      );
    });
    this.table.tBodies[0].replaceChildren(...rows);
    this.table.hidden = rows.length === 0;
  }
}
