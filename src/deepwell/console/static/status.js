// The public status page: /status.json drawn as a banner, a table of components with the
// last hour minute by minute, and the recent incidents. No sign-in, nothing private.
import { h, notice, table, when } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";
const WORDS = { operational: "All systems operational", degraded: "Degraded service", down: "Major outage" };
const STATES = { ready: "up", restarting: "restarting", failed: "down" };

function minutes(values, name) {
  const svg = document.createElementNS(SVG, "svg");
  const width = values.length * 5;
  svg.setAttribute("viewBox", `0 0 ${width} 20`);
  svg.setAttribute("width", String(width));
  svg.setAttribute("height", "20");
  svg.setAttribute("class", "bars");
  svg.setAttribute("role", "img");
  const up = values.filter((v) => v === 1).length;
  const seen = values.filter((v) => v !== null).length;
  svg.setAttribute("aria-label", `${name}: up in ${up} of the ${seen} minutes sampled in the last hour`);
  values.forEach((value, i) => {
    const rect = document.createElementNS(SVG, "rect");
    const kind = value === null ? "none" : value === 1 ? "up" : value === 0 ? "down" : "partly";
    for (const [k, v] of Object.entries({ x: i * 5, y: 0, width: 4, height: 20, class: kind })) rect.setAttribute(k, String(v));
    svg.append(rect);
  });
  return svg;
}

const pct = (value) => (value === null ? "—" : `${(value * 100).toFixed(2)}%`);

async function refresh() {
  let status;
  try {
    const response = await fetch("/status.json", { cache: "no-store" });
    status = await response.json();
  } catch {
    document.getElementById("overall").replaceChildren(notice("The API does not answer: it is down or unreachable.", "error"));
    return;
  }
  document.getElementById("overall").replaceChildren(
    h("p", {}, h("span", { class: `pill ${status.status}`, id: "overall-status" }, WORDS[status.status] || status.status)),
    h("p", { class: "muted" }, `API: up · updated ${when(status.updated_at)}`),
  );
  document.getElementById("components").replaceChildren(
    table("Backing models", [
      { label: "Component", value: (c) => c.name },
      { label: "Serves", value: (c) => c.models.join(", ") },
      { label: "State", value: (c) => h("span", { class: `pill ${c.state}` }, STATES[c.state] || c.state) },
      { label: `Uptime (last ${Math.round(status.window_s / 3600)} h)`, num: true, value: (c) => pct(c.uptime) },
      { label: "Last hour", value: (c) => minutes(c.recent_minutes, c.name) },
    ], status.components),
  );
  document.getElementById("incidents").replaceChildren(
    table("Incidents, newest first", [
      { label: "What", value: (i) => i.title + (i.refusals ? ` (${i.refusals} refused)` : "") },
      { label: "Component", value: (i) => i.component },
      { label: "Started", value: (i) => when(i.started_at) },
      { label: "Ended", value: (i) => (i.ongoing ? h("span", { class: "pill degraded" }, "ongoing") : when(i.ended_at)) },
    ], status.incidents),
  );
}

refresh();
setInterval(refresh, 10000);
