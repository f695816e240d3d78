import { api, fail, h, money, start, table } from "./common.js";

const who = start("accounts", { admin: true });
const where = document.getElementById("accounts");

async function load() {
  try {
    const { accounts } = await api("/admin/accounts");
    const total = (a) => a.balances.map((b) => money(b.total, b.currency)).join(", ") || money(0);
    where.replaceChildren(
      table("Accounts and their balances", [
        { label: "Account", value: (a) => a.account },
        { label: "Balance", num: true, value: total },
        {
          label: "Pages",
          value: (a) =>
            h(
              "span",
              {},
              h("a", { href: `/console/balance?account=${encodeURIComponent(a.account)}` }, `Top up ${a.account}`),
              " · ",
              h("a", { href: `/console/usage?account=${encodeURIComponent(a.account)}` }, "usage"),
            ),
        },
      ], accounts),
    );
  } catch (error) {
    fail(where, error);
  }
}

if (who) load();
