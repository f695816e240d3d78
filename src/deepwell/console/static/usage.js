import { barChart } from "./chart.js";
import { api, count, fail, h, money, start, table } from "./common.js";

const who = start("usage");
const admin = who?.role === "admin";
const form = document.getElementById("filters");
const summary = document.getElementById("summary");
const charts = document.getElementById("charts");
document.getElementById("account-field").hidden = !admin;

const percent = (value) => `${(value * 100).toFixed(1)}%`;
const input = (r) => r.hit_tokens + r.miss_tokens;

function sums(rows) {
  const total = { requests: 0, hit: 0, miss: 0, output: 0, reasoning: 0, cost: 0 };
  for (const r of rows) {
    total.requests += r.requests;
    total.hit += r.hit_tokens;
    total.miss += r.miss_tokens;
    total.output += r.output_tokens;
    total.reasoning += r.reasoning_tokens;
    total.cost += Number(r.cost);
  }
  total.input = total.hit + total.miss;
  total.ratio = total.input ? total.hit / total.input : 0;
  return total;
}

function groups(rows, keyOf) {
  const found = new Map();
  for (const row of rows) {
    const key = keyOf(row);
    if (!found.has(key)) found.set(key, []);
    found.get(key).push(row);
  }
  return found;
}

function periods(usage) {
  const step = usage.period === "hour" ? 3600e3 : 86400e3;
  const out = [];
  let at = Math.floor(Date.parse(usage.since) / step) * step;
  for (; at < Date.parse(usage.until); at += step) out.push(new Date(at).toISOString().replace(".000Z", "Z"));
  return out;
}

function periodLabel(iso, period) {
  return period === "hour" ? `${iso.slice(11, 13)}:00` : iso.slice(5, 10);
}

function charted(id, title, header, labels, totals, busy = null) {
  return [
    barChart({
      id: `${id}-tokens`,
      title: `Tokens in and out ${title}`,
      labelHeader: header,
      labels,
      busy,
      series: [
        { name: "Tokens in", values: totals.map((t) => t.input), format: count },
        { name: "Tokens out", values: totals.map((t) => t.output), format: count },
      ],
    }),
    barChart({
      id: `${id}-ratio`,
      title: `Cache-hit ratio ${title}`,
      labelHeader: header,
      labels,
      busy,
      series: [{ name: "Cache hits of tokens in", values: totals.map((t) => t.ratio), format: percent }],
    }),
    barChart({
      id: `${id}-cost`,
      title: `Cost ${title}`,
      labelHeader: header,
      labels,
      busy,
      series: [{ name: "Cost", values: totals.map((t) => t.cost), format: (v) => money(v) }],
    }),
  ];
}

async function load() {
  const [period, span] = form.range.value.split(":");
  const until = new Date();
  const since = new Date(until.getTime() - Number(span) * (period === "hour" ? 3600e3 : 86400e3));
  const params = new URLSearchParams({ period, since: since.toISOString(), until: until.toISOString() });
  if (admin && form.account.value) params.set("account", form.account.value);
  try {
    const [usage, { keys }] = await Promise.all([
      api(`${admin ? "/admin/usage" : "/console/api/usage"}?${params}`),
      api(admin ? "/admin/keys" : "/console/api/keys"),
    ]);
    const names = new Map(keys.map((k) => [k.key_id, `${k.name || k.key_id}${admin ? ` (${k.account})` : ""}`]));
    show(usage, names);
  } catch (error) {
    fail(summary, error);
    charts.replaceChildren();
  }
}

function show(usage, names) {
  const total = sums(usage.rows);
  summary.replaceChildren(
    table("Totals", [
      { label: "Requests", num: true, value: (t) => count(t.requests) },
      { label: "Tokens in", num: true, value: (t) => count(t.input) },
      { label: "Cache-hit ratio", num: true, value: (t) => percent(t.ratio) },
      { label: "Tokens out", num: true, value: (t) => count(t.output) },
      { label: "Of which reasoning", num: true, value: (t) => count(t.reasoning) },
      { label: "Cost", num: true, value: (t) => money(t.cost, usage.totals[0]?.currency || "") },
    ], [total]),
  );
  const byTime = groups(usage.rows, (r) => r.start);
  const times = periods(usage);
  const byModel = groups(usage.rows, (r) => r.model);
  const byKey = groups(usage.rows, (r) => r.key_id || "");
  const keyName = (id) => (id ? names.get(id) || id : "no key");
  const header = usage.period === "hour" ? "Hour (UTC)" : "Day (UTC)";
  charts.replaceChildren(
    h("h2", {}, "Over time"),
    h("div", { class: "grid2" }, charted("time", usage.period === "hour" ? "by hour" : "by day", header, times.map((t) => periodLabel(t, usage.period)), times.map((t) => sums(byTime.get(t) || [])), times.map((t) => byTime.has(t)))),
    h("h2", {}, "Per model"),
    h("div", { class: "grid2" }, charted("model", "per model", "Model", [...byModel.keys()], [...byModel.values()].map(sums))),
    h("h2", {}, "Per key"),
    h("div", { class: "grid2" }, charted("key", "per key", "Key", [...byKey.keys()].map(keyName), [...byKey.values()].map(sums))),
  );
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});

async function accounts() {
  const { accounts } = await api("/admin/accounts");
  form.account.append(...accounts.map((a) => h("option", { value: a.account }, a.account)));
  const wanted = new URLSearchParams(location.search).get("account");
  if (wanted) form.account.value = wanted;
}

if (who) (admin ? accounts() : Promise.resolve()).then(load, (error) => fail(summary, error));
