import { api, fail, h, notice, start, table, when } from "./common.js";

const who = start("keys");
const admin = who?.role === "admin";
const base = admin ? "/admin/keys" : "/console/api/keys";
const list = document.getElementById("keys");
const form = document.getElementById("create");
const created = document.getElementById("created");
document.getElementById("account-field").hidden = !admin;
if (admin) form.account.required = true;

async function load() {
  try {
    const { keys } = await api(base);
    list.replaceChildren(
      table(admin ? "Every account's keys" : `Keys of ${who.account}`, columns(), keys),
    );
  } catch (error) {
    fail(list, error);
  }
}

function columns() {
  return [
    { label: "Name", value: (k) => k.name || "—" },
    ...(admin ? [{ label: "Account", value: (k) => k.account }] : []),
    { label: "Key", value: (k) => `sk-…${k.last4}` },
    { label: "Id", value: (k) => k.key_id },
    { label: "Created", value: (k) => when(k.created_at) },
    { label: "Status", value: (k) => (k.revoked_at ? `revoked ${when(k.revoked_at)}` : "active") },
    {
      label: "Action",
      value: (k) =>
        k.revoked_at
          ? ""
          : h("button", { type: "button", class: "danger", "aria-label": `Revoke ${k.name || k.key_id}`, onclick: () => revoke(k) }, "Revoke"),
    },
  ];
}

async function revoke(key) {
  const own = key.key_id === who.key_id;
  const question = own
    ? "This is the key you signed in with: revoking it signs you out. Revoke it?"
    : `Revoke ${key.name || key.key_id}? Requests with it are refused at once.`;
  if (!confirm(question)) return;
  try {
    await api(`${base}/${encodeURIComponent(key.key_id)}`, { method: "DELETE" });
    if (own) {
      sessionStorage.clear();
      location.assign("/console");
      return;
    }
    created.replaceChildren(notice(`Revoked ${key.name || key.key_id}.`, "ok"));
    await load();
  } catch (error) {
    fail(created, error);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = { name: form.elements.name.value.trim() || null };
  if (admin) body.account = form.account.value.trim();
  try {
    const key = await api(base, { method: "POST", body });
    form.reset();
    created.replaceChildren(
      h(
        "div",
        { class: "notice ok", role: "status" },
        h("p", {}, `New key ${key.name ? `“${key.name}” ` : ""}of ${key.account}. It is shown this once: copy it now.`),
        h("p", { class: "secret", id: "new-key" }, key.key),
        h("button", { type: "button", onclick: () => navigator.clipboard?.writeText(key.key) }, "Copy key"),
      ),
    );
    await load();
  } catch (error) {
    fail(created, error);
  }
});

if (who) load();
