// The explorer's query as a script would send it: the query parameters of GET
// /query/data/json, a curl command, the official Python SDK's call, and a POST /query/batch
// body. The key is never written into any of them: they name $QB_API_KEY instead.

/** The query's parameters in the API's names, in a stable order. */
export function queryParams(query) {
  const params = new URLSearchParams();
  params.set("ds_id", query.ds_id);
  params.set("ds_accounts", query.ds_accounts.join(","));
  params.set("fields", query.fields.join(","));
  if (query.date_range_type === "custom") {
    params.set("start_date", query.start_date);
    params.set("end_date", query.end_date);
  } else {
    params.set("date_range_type", query.date_range_type);
  }
  if (query.filter) params.set("filter", query.filter);
  params.set("max_rows", String(query.max_rows));
  return params;
}

/** A string as a POSIX shell word in single quotes. */
function shellQuoted(text) {
  return `'${text.replaceAll("'", `'"'"'`)}'`;
}

/** A string as a Python literal (a JSON string is one: same escapes, double quotes). */
function python(text) {
  return JSON.stringify(text);
}

/** The curl command: the key comes from the shell's environment, not from this page. */
export function curlText(query, origin) {
  const url = `${origin}/query/data/json?${queryParams(query)}`;
  return `curl -H "Authorization: Bearer $QB_API_KEY" \\\n  ${shellQuoted(url)}`;
}

/** The official SDK's call (``supermetrics``: ``client.queries.execute``). */
export function sdkText(query, origin) {
  const relative = query.date_range_type !== "custom";
  const list = (items) => `[${items.map(python).join(", ")}]`;
  const args = [
    `ds_id=${python(query.ds_id)}`,
    `ds_accounts=${list(query.ds_accounts)}`,
    `fields=${list(query.fields)}`,
    // execute() requires both dates; a named range wins over them on the server.
    `start_date=${python(relative ? "" : query.start_date)}`,
    `end_date=${python(relative ? "" : query.end_date)}`,
  ];
  if (relative) args.push(`date_range_type=${python(query.date_range_type)}`);
  if (query.filter) args.push(`filter_=${python(query.filter)}`);
  args.push(`max_rows=${query.max_rows}`);
  return [
    "import os",
    "",
    "from supermetrics import SupermetricsClient",
    "",
    "with SupermetricsClient(",
    `    api_key=os.environ["QB_API_KEY"], base_url=${python(origin)}`,
    ") as client:",
    "    result = client.queries.execute(",
    ...args.map((arg) => `        ${arg},`),
    "    )",
  ].join("\n");
}

/** The body of ``POST /query/batch`` running this one query. */
export function batchText(query) {
  const item = { ds_id: query.ds_id, ds_accounts: query.ds_accounts, fields: query.fields };
  if (query.date_range_type === "custom") {
    item.start_date = query.start_date;
    item.end_date = query.end_date;
  } else {
    item.date_range_type = query.date_range_type;
  }
  if (query.filter) item.filter = query.filter;
  item.max_rows = query.max_rows;
  return JSON.stringify({ queries: [item] }, null, 2);
}
