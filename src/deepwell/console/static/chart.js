// Bar charts as inline SVG, each followed by the table of the numbers it draws.
import { h, table } from "./common.js";

const SVG = "http://www.w3.org/2000/svg";
const W = 640;
const H = 220;
const M = { left: 64, right: 12, top: 12, bottom: 44 };
const COLORS = ["#0b57d0", "#c2410c"];

function s(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// labels: the x values; series: [{ name, values, format }] (one or two). With ``busy`` (a
// boolean per label), the table lists only the busy labels (a long time axis stays short).
export function barChart({ id, title, labels, series, labelHeader = "", busy = null }) {
  const max = Math.max(0, ...series.flatMap((one) => one.values)) || 1;
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const slot = labels.length ? plotW / labels.length : plotW;
  const bar = Math.max(1, (slot * 0.8) / series.length);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-caption` });
  const format = series[0]?.format || String;
  for (const step of [0, 0.5, 1]) {
    const y = M.top + plotH * (1 - step);
    svg.append(
      s("line", { x1: M.left, x2: W - M.right, y1: y, y2: y, stroke: "#c9d1d9" }),
      s("text", { x: M.left - 6, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#4a5360" }, format(max * step)),
    );
  }
  const every = Math.ceil(labels.length / 8) || 1;
  labels.forEach((label, i) => {
    series.forEach((one, j) => {
      const value = one.values[i];
      const height = (value / max) * plotH;
      const x = M.left + slot * i + slot * 0.1 + bar * j;
      svg.append(
        s(
          "rect",
          { x, y: M.top + plotH - height, width: bar, height: Math.max(height, 0), fill: COLORS[j] },
          s("title", {}, `${label} · ${one.name}: ${one.format(value)}`),
        ),
      );
    });
    if (i % every === 0) {
      svg.append(
        s("text", { x: M.left + slot * (i + 0.5), y: H - M.bottom + 16, "text-anchor": "middle", "font-size": 11, fill: "#4a5360" }, label),
      );
    }
  });
  const legend =
    series.length > 1
      ? h("p", { class: "legend" }, series.map((one, j) => h("span", {}, h("span", { class: `swatch s${j + 1}`, "aria-hidden": "true" }), one.name)))
      : null;
  const columns = [
    { label: labelHeader, value: (i) => labels[i] },
    ...series.map((one) => ({ label: one.name, num: true, value: (i) => one.format(one.values[i]) })),
  ];
  return h(
    "figure",
    { class: "chart", id },
    h("figcaption", { id: `${id}-caption` }, title),
    legend,
    svg,
    table(
      `${title}: the numbers${busy ? " (periods with requests)" : ""}`,
      columns,
      labels.map((_, i) => i).filter((i) => !busy || busy[i]),
    ),
  );
}
