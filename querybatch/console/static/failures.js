// A batch's failed sub-queries grouped by error code and message, with the accounts and dates
// they hit: the failure summary the server groups (GET /query/batch/{id}/failures).
import { api, h } from "./console.js";

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
    const summary = await api(`${this.path}/failures`);
    this.show(summary.data);
    const { failures: count, groups_truncated: truncated, max_groups: most } = summary.meta;
    this.note.textContent =
      `${count.toLocaleString("en")} failed sub-queries, grouped by reason` +
      (truncated ? ` (the ${most} largest groups shown).` : ".");
  }

  show(groups) {
    const rows = groups.map((group) => {
      const named = group.accounts.slice(0, SHOWN).map((a) => a.account).join(", ");
      const others = group.account_count - Math.min(SHOWN, group.accounts.length);
      const more = others > 0 ? ` and ${others.toLocaleString("en")} more` : "";
      const dates = group.first_date ? `${group.first_date} – ${group.last_date}` : "—";
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
