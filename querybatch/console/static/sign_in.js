// Sign in: check the pasted key with /whoami, keep it in session storage, go on.
import { ApiError, api, clearError, consolePath, keepKey, showError } from "./console.js";

const form = document.getElementById("sign-in");
const input = document.getElementById("key");
const error = document.getElementById("sign-in-error");

/** Where to go once signed in: a console page named by ?next=, else the overview. */
function nextPage() {
  const next = new URLSearchParams(location.search).get("next") ?? "";
  const safe = next.startsWith(`${consolePath}/`) && !next.startsWith("//") && !next.includes("\\");
  return safe ? next : `${consolePath}/`;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearError(error);
  const key = input.value.trim();
  if (!key) {
    showError("Paste an API key first.", error);
    input.focus();
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  try {
    await api("/whoami", { key });
    keepKey(key);
    location.assign(nextPage());
  } catch (failure) {
    const message =
      failure instanceof ApiError && failure.status === 401
        ? `That key was not accepted: ${failure.message}.`
        : `Could not sign in: ${failure.message}`;
    showError(message, error);
    input.select();
    input.focus();
  } finally {
    button.disabled = false;
  }
});
input.focus();
