// Data sources: the configured ones with their connector types; for the one chosen
// (``?ds=`` in the address), its dimensions and metrics apart, and its accounts.
import {
  api,
  ApiError,
  byId,
  consolePath,
  h,
  permits,
  showError,
  signOut,
  startPage,
} from "./console.js";

const ACCOUNTS_SHOWN = 1000; // a source may have 10,000 accounts: a page shows this many
const DS_ID = /^[A-Za-z0-9_-]{1,50}$/;

function sourceRow(source, chosen) {
  const link = h("a", { href: `${consolePath}/sources?ds=${encodeURIComponent(source.ds_id)}` });
  link.append(h("code", {}, source.ds_id));
  if (source.ds_id === chosen) link.setAttribute("aria-current", "true");
  return h("tr", { "data-ds-id": source.ds_id }, h("td", {}, link), h("td", {}, source.connector));
}

function fieldRow(field) {
  return h(
    "tr",
    { "data-field-id": field.field_id },
    h("td", {}, h("code", {}, field.field_id)),
    h("td", {}, field.field_name),
    h("td", {}, field.data_type),
    h("td", {}, field.group_name),
  );
}

function fillFields(id, fields) {
  byId(id).tBodies[0].replaceChildren(...fields.map(fieldRow));
  byId(id).hidden = fields.length === 0;
  byId(`${id}-empty`).hidden = fields.length > 0;
}

async function showFields(dsId) {
  const fields = (await api(`/query/fields?ds_id=${encodeURIComponent(dsId)}`)).data;
  fillFields("dimensions", fields.filter((f) => f.entity_type !== "ds_metric"));
  fillFields("metrics", fields.filter((f) => f.entity_type === "ds_metric"));
}

async function showAccounts(dsId, identity) {
  const note = byId("accounts-note");
  const table = byId("accounts");
  if (!permits(identity, "get_accounts")) {
    note.textContent = "Your key's role does not allow listing accounts (get_accounts).";
    table.hidden = true;
    return;
  }
  const logins = (await api(`/query/accounts?ds_id=${encodeURIComponent(dsId)}`)).data;
  const rows = [];
  let total = 0;
  for (const login of logins) {
    for (const account of login.accounts) {
      total += 1;
      if (rows.length >= ACCOUNTS_SHOWN) continue;
      rows.push(
        h(
          "tr",
          { "data-account-id": account.account_id },
          h("td", {}, login.display_name || login.ds_user),
          h("td", {}, h("code", {}, account.account_id)),
          h("td", {}, account.account_name),
          h("td", {}, account.group_name),
        ),
      );
    }
  }
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = rows.length === 0;
  const through = `${logins.length.toLocaleString("en")} login${logins.length === 1 ? "" : "s"}`;
  const shown = rows.length < total ? `, the first ${rows.length.toLocaleString("en")} shown` : "";
  note.textContent = `${total.toLocaleString("en")} accounts through ${through}${shown}.`;
}

async function showSource(dsId, sources, identity) {
  byId("source").hidden = false;
  byId("source-id").textContent = dsId;
  document.title = `Data source ${dsId} · querybatch console`;
  if (!sources.some((s) => s.ds_id === dsId)) {
    byId("source-missing").hidden = false;
    return;
  }
  byId("source-found").hidden = false;
  await showFields(dsId);
  await showAccounts(dsId, identity);
}

async function start(identity) {
  byId("loading").hidden = true;
  if (!permits(identity, "get_fields")) {
    byId("refused").hidden = false;
    return;
  }
  const chosen = new URLSearchParams(location.search).get("ds") ?? "";
  try {
    const sources = (await api("/query/sources")).data;
    byId("sources").tBodies[0].replaceChildren(...sources.map((s) => sourceRow(s, chosen)));
    byId("sources-section").hidden = false;
    if (DS_ID.test(chosen)) await showSource(chosen, sources, identity);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) signOut();
    if (error instanceof ApiError && error.status === 403) byId("refused").hidden = false;
    showError(error);
  }
}

const identity = await startPage();
if (identity) await start(identity);
