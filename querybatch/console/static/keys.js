// Keys and roles: the account's keys (create, with the secret shown once; revoke, after a
// confirmation) and its roles (list; create and delete custom ones). What the role does not
// allow is not offered, and the API refuses it anyway.
import { api, ApiError, byId, h, permits, showError, signOut, startPage, when } from "./console.js";

const DEFAULT_ROLE = "viewer"; // a new key gets the least unless chosen otherwise

/** Say ``text`` in the status line ``id`` (an error of the API with its code); a 401 means
 * the signed-in key was revoked meanwhile, which signs the tab out. */
function say(id, text) {
  if (text instanceof ApiError && text.status === 401) signOut();
  byId(id).textContent = text instanceof ApiError ? `${text.message} (${text.code})` : text;
}

// -- the secret of a new key: in this page's DOM only, never in a URL, storage or log ---------

function showSecret(made) {
  byId("created-name").textContent = made.name;
  byId("created-secret").value = made.secret;
  byId("copy-message").textContent = "";
  byId("created").hidden = false;
  byId("created-secret").focus();
  byId("created-secret").select();
}

function forgetSecret() {
  byId("created-secret").value = "";
  byId("created-name").textContent = "";
  byId("copy-message").textContent = "";
  byId("created").hidden = true;
}

async function copySecret() {
  const field = byId("created-secret");
  try {
    await navigator.clipboard.writeText(field.value);
    say("copy-message", "Copied to the clipboard.");
  } catch {
    field.focus();
    field.select();
    say("copy-message", "The browser did not allow copying: the secret is selected, press Ctrl+C.");
  }
}

// -- keys -------------------------------------------------------------------------------------

let revoking = null; // the key the revoke dialog asks about

function keyRow(key, identity) {
  let action = null;
  if (key.id === identity.key.id) {
    action = h("span", { class: "muted" }, "this key");
  } else if (key.revoked_at === null) {
    const label = `Revoke key ${key.name}`;
    action = h("button", { type: "button", class: "secondary", "aria-label": label }, "Revoke…");
    action.addEventListener("click", () => {
      revoking = key;
      byId("revoke-name").textContent = key.name;
      byId("revoke-prefix").textContent = key.prefix;
      byId("confirm-revoke").showModal();
    });
  }
  return h(
    "tr",
    { "data-key-id": key.id },
    h("td", { class: "name" }, key.name),
    h("td", {}, h("code", {}, key.prefix)),
    h("td", {}, key.role),
    h("td", {}, when(new Date(key.created_at * 1000).toISOString())),
    h("td", {}, key.revoked_at === null ? "—" : when(new Date(key.revoked_at * 1000).toISOString())),
    h("td", {}, action),
  );
}

async function loadKeys(identity) {
  const listed = await api("/keys");
  const rows = listed.keys.map((key) => keyRow(key, identity));
  byId("keys").tBodies[0].replaceChildren(...rows);
}

function fillRoleChoice(names) {
  const select = byId("key-role");
  const chosen = select.value || (names.includes(DEFAULT_ROLE) ? DEFAULT_ROLE : names[0]);
  select.replaceChildren(...names.map((name) => h("option", { value: name }, name)));
  select.value = names.includes(chosen) ? chosen : names[0];
}

function wireKeys(identity) {
  byId("new-key").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = byId("key-name").value.trim();
    const role = byId("key-role").value;
    const button = byId("new-key").querySelector("button[type=submit]");
    button.disabled = true;
    say("key-message", "");
    try {
      const made = await api("/keys", { method: "POST", body: { name, role } });
      byId("key-name").value = "";
      showSecret(made);
      await loadKeys(identity);
    } catch (error) {
      say("key-message", error);
    } finally {
      button.disabled = false;
    }
  });
  byId("copy-secret").addEventListener("click", copySecret);
  byId("forget-secret").addEventListener("click", forgetSecret);
  // Leaving the page forgets the secret, so a page kept for "back" never shows it again.
  window.addEventListener("pagehide", forgetSecret);

  const dialog = byId("confirm-revoke");
  dialog.addEventListener("close", async () => {
    const key = revoking;
    revoking = null;
    if (dialog.returnValue !== "revoke" || key === null) return;
    dialog.returnValue = "";
    try {
      await api(`/keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
      say("key-message", `Revoked ${key.name}: requests with it now fail.`);
      await loadKeys(identity);
    } catch (error) {
      say("key-message", error);
    }
  });
}

// -- roles ------------------------------------------------------------------------------------

let deleting = null; // the role the delete dialog asks about

function roleRow(role) {
  let action = null;
  if (!role.builtin) {
    const label = `Delete role ${role.name}`;
    action = h("button", { type: "button", class: "secondary", "aria-label": label }, "Delete…");
    action.addEventListener("click", () => {
      deleting = role;
      byId("delete-role-name").textContent = role.name;
      byId("confirm-delete-role").showModal();
    });
  }
  let actions = role.actions.join(", ");
  if (role.actions.length === 0) actions = role.effect === "deny" ? "(every action)" : "(none)";
  return h(
    "tr",
    { "data-role": role.name },
    h("th", { scope: "row" }, role.name),
    h("td", {}, role.builtin ? "built-in" : "custom"),
    h("td", {}, role.effect),
    h("td", { class: "actions-list" }, actions),
    h("td", {}, action),
  );
}

async function loadRoles(identity) {
  const listed = await api("/roles");
  byId("roles").tBodies[0].replaceChildren(...listed.roles.map(roleRow));
  if (permits(identity, "manage_keys")) fillRoleChoice(listed.roles.map((r) => r.name));
}

function wireRoles(identity) {
  byId("new-role").addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      name: byId("role-name").value.trim(),
      effect: byId("role-effect").value,
      actions: byId("role-actions").value.split(/[\s,]+/).filter(Boolean),
    };
    say("role-message", "");
    try {
      await api("/roles", { method: "POST", body });
      byId("role-name").value = "";
      byId("role-actions").value = "";
      say("role-message", `Created the role ${body.name}.`);
      await loadRoles(identity);
    } catch (error) {
      say("role-message", error);
    }
  });
  const dialog = byId("confirm-delete-role");
  dialog.addEventListener("close", async () => {
    const role = deleting;
    deleting = null;
    if (dialog.returnValue !== "delete" || role === null) return;
    dialog.returnValue = "";
    try {
      await api(`/roles/${encodeURIComponent(role.name)}`, { method: "DELETE" });
      say("role-message", `Deleted the role ${role.name}.`);
      await loadRoles(identity);
    } catch (error) {
      say("role-message", error);
    }
  });
}

// -- the page ---------------------------------------------------------------------------------

async function start(identity) {
  const keys = permits(identity, "manage_keys");
  const roles = permits(identity, "manage_roles");
  byId("loading").hidden = true;
  if (!keys && !roles) {
    byId("refused").hidden = false;
    document.title = "Not allowed · querybatch console";
    return;
  }
  byId("keys-section").hidden = false;
  byId("roles-section").hidden = false;
  byId("keys-refused").hidden = keys;
  byId("keys-allowed").hidden = !keys;
  byId("roles-refused").hidden = roles;
  byId("roles-allowed").hidden = !roles;
  // Without manage_roles the roles cannot be listed: a key can then hand out its own role.
  if (keys && !roles) fillRoleChoice([identity.role]);
  try {
    if (keys) {
      wireKeys(identity);
      await loadKeys(identity);
    }
    if (roles) {
      wireRoles(identity);
      await loadRoles(identity);
    }
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) signOut();
    showError(error);
  }
}

const identity = await startPage();
if (identity) await start(identity);
