// Bulk batches: the account's list (newest first, a page at a time) and a new batch from a
// JSON Lines file (chosen or dropped): its SHA-256 computed here, an upload URL asked for,
// the file PUT to it, the batch created as Trusted Twin's client does, then its page.
import { api, byId, clearError, consolePath, h, permits, showError, startPage } from "./console.js";

const PAGE = 50;
let cursor = null;
let le = null;

/** The SHA-256 of ``file`` as 64 lowercase hex digits. */
async function sha256(file) {
  const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function loadPage() {
  const params = new URLSearchParams({ ge: "0", le: String(le), limit: String(PAGE) });
  if (cursor) params.set("cursor", cursor);
  const answer = await api(`/batches?${params}`);
  const body = byId("bulk-list").querySelector("tbody");
  for (const [id, status] of Object.entries(answer.batches)) {
    const link = h("a", { href: `${consolePath}/bulk/${encodeURIComponent(id)}` }, h("code", {}, id));
    body.append(
      h("tr", { "data-bulk-id": id }, h("td", {}, link), h("td", {}, h("span", { class: "status" }, status))),
    );
  }
  cursor = answer.cursor;
  byId("more").hidden = !cursor;
  const count = body.rows.length;
  byId("list-info").textContent = count ? `${count} shown, newest first.` : "No bulk batches yet.";
}

async function submit(file) {
  const message = byId("upload-message");
  const input = byId("file");
  clearError();
  input.disabled = true;
  try {
    message.textContent = `Hashing ${file.name}…`;
    const hash = await sha256(file);
    message.textContent = `Uploading ${file.name} (${file.size.toLocaleString("en")} bytes)…`;
    const upload = await api("/cache", { method: "POST" });
    const put = await fetch(upload.url, {
      method: "PUT",
      body: file,
      credentials: "omit",
      redirect: "error",
      referrerPolicy: "no-referrer",
    });
    if (!put.ok) {
      let error = {};
      try {
        error = (await put.json()).error ?? {};
      } catch {
        // not an envelope
      }
      throw new Error(`Upload refused: ${error.message ?? put.statusText} (${error.code ?? put.status})`);
    }
    message.textContent = "Creating the batch…";
    const batch = await api("/batches", {
      method: "POST",
      body: { handler: upload.handler, operation: "get_data", hash },
    });
    message.textContent = `Created ${batch.batch}.`;
    location.assign(`${consolePath}/bulk/${encodeURIComponent(batch.batch)}`);
  } catch (error) {
    message.textContent = "";
    showError(error);
  } finally {
    input.disabled = false;
    input.value = "";
  }
}

function wireUpload() {
  const input = byId("file");
  input.addEventListener("change", () => {
    if (input.files.length === 1) submit(input.files[0]);
  });
  const drop = byId("drop");
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("dragging");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("dragging"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("dragging");
    const files = event.dataTransfer?.files;
    if (files && files.length === 1) submit(files[0]);
  });
}

const identity = await startPage();
if (identity) {
  le = Math.floor(Date.now() / 1000) + 86_400;
  const canCreate =
    permits(identity, "create_upload_url") &&
    permits(identity, "create_batch") &&
    permits(identity, "get_data");
  byId("upload").hidden = !canCreate;
  if (canCreate) wireUpload();
  byId("more").addEventListener("click", () => loadPage().catch(showError));
  try {
    await loadPage();
  } catch (error) {
    showError(error);
  }
}
