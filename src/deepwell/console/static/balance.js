import { api, fail, h, money, notice, start, table, when } from "./common.js";

const who = start("balance");
const admin = who?.role === "admin";
const pick = document.getElementById("pick");
const balances = document.getElementById("balances");
const history = document.getElementById("history");
const form = document.getElementById("topup");
const message = document.getElementById("topup-message");
pick.hidden = !admin;
document.getElementById("topup-card").hidden = !admin;

function show(account) {
  const caption = `Balance of ${account.account}`;
  balances.replaceChildren(
    table(caption, [
      { label: "Currency", value: (b) => b.currency },
      { label: "Total", num: true, value: (b) => money(b.total) },
      { label: "Granted", num: true, value: (b) => money(b.granted) },
      { label: "Topped up", num: true, value: (b) => money(b.topped_up) },
      { label: "Held by running requests", num: true, value: (b) => money(b.held) },
    ], account.balances),
  );
  history.replaceChildren(
    table(`Top-ups and grants of ${account.account}, newest first`, [
      { label: "When", value: (t) => when(t.created_at) },
      { label: "Kind", value: (t) => (t.granted ? "grant" : "top-up") },
      { label: "Amount", num: true, value: (t) => money(t.amount, t.currency) },
    ], account.top_ups),
  );
}

async function load() {
  try {
    if (!admin) return show(await api("/console/api/account"));
    const select = pick.account;
    if (!select.options.length) {
      const { accounts } = await api("/admin/accounts");
      select.replaceChildren(...accounts.map((a) => h("option", { value: a.account }, a.account)));
      const wanted = new URLSearchParams(location.search).get("account");
      if (wanted) select.value = wanted;
    }
    if (!select.value) return balances.replaceChildren(notice("No accounts yet."));
    show(await api(`/admin/accounts/${encodeURIComponent(select.value)}`));
  } catch (error) {
    fail(balances, error);
  }
}

pick.account.addEventListener("change", () => {
  message.replaceChildren();
  load();
});

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!form.reportValidity()) return;
  const account = pick.account.value;
  const body = { amount: form.amount.value.trim(), currency: form.currency.value.trim() || null, granted: form.granted.checked };
  try {
    const done = await api(`/admin/accounts/${encodeURIComponent(account)}/top-ups`, { method: "POST", body });
    form.amount.value = "";
    message.replaceChildren(notice(`Added ${money(body.amount, done.balance.currency)} to ${account}: the balance is ${money(done.balance.total, done.balance.currency)}.`, "ok"));
    await load();
  } catch (error) {
    fail(message, error);
  }
});

if (who) load();
