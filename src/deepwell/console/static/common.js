// What every console page shares: the session, calls to the API, the header, small DOM helpers.
// The key or admin token lives in sessionStorage only (gone when the tab closes) and travels
// as a Bearer header; the server checks it on every call. Text is always set with
// textContent, never parsed as HTML.

const SESSION = "deepwell.console.session";

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION) || "null");
  } catch {
    return null;
  }
}

export function signOut() {
  sessionStorage.removeItem(SESSION);
  location.assign("/console");
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function call(secret, path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${secret}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const message = data?.error?.message || `${response.status} ${response.statusText}`;
    throw new ApiError(response.status, message);
  }
  return data;
}

export async function signIn(secret) {
  const who = await call(secret, "/console/api/session");
  sessionStorage.setItem(SESSION, JSON.stringify({ ...who, secret }));
  return who;
}

export function api(path, options) {
  const current = session();
  if (!current) throw new ApiError(401, "Not signed in");
  return call(current.secret, path, options).catch((error) => {
    if (error.status === 401 && path === "/console/api/session") signOut();
    throw error;
  });
}

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function table(caption, columns, rows) {
  // columns: [{ label, num?, value(row) }]
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    h(
      "tbody",
      {},
      rows.length
        ? rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.num ? "num" : null }, c.value(row)))))
        : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "Nothing yet.")),
    ),
  );
}

export function notice(text, kind = "") {
  return h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

export function money(amount, currency = "") {
  const value = Number(amount);
  const digits = Math.abs(value) > 0 && Math.abs(value) < 0.01 ? 6 : 2;
  return `${value.toFixed(digits)}${currency ? ` ${currency}` : ""}`;
}

export function count(value) {
  return Number(value).toLocaleString("en-US");
}

export function when(iso) {
  return iso ? iso.replace("T", " ").replace("Z", " UTC") : "";
}

const PAGES = [
  ["keys", "API keys"],
  ["balance", "Balance"],
  ["usage", "Usage"],
  ["playground", "Playground"],
  ["accounts", "Accounts", "admin"],
];

// The page's header; a visitor who is not signed in goes to the sign-in page. With
// ``admin``, a page that an account key may not see says so instead of rendering.
export function start(current, { admin = false } = {}) {
  const who = session();
  if (!who) {
    location.replace(`/console?next=${encodeURIComponent(location.pathname)}`);
    return null;
  }
  const links = PAGES.filter(([, , only]) => !only || who.role === "admin").map(([page, label]) =>
    h("li", {}, h("a", { href: `/console/${page}`, "aria-current": page === current ? "page" : null }, label)),
  );
  links.push(h("li", {}, h("a", { href: "/status" }, "Status")));
  const label = who.role === "admin" ? "Admin (every account)" : `Account: ${who.account}`;
  document.querySelector("header.top").append(
    h("nav", { "aria-label": "Console" }, h("ul", {}, links)),
    h("div", { class: "who" }, h("span", { id: "who" }, label), h("button", { type: "button", onclick: signOut }, "Sign out")),
  );
  if (admin && who.role !== "admin") {
    document.querySelector("main").replaceChildren(
      h("h1", {}, "Admin only"),
      notice("This page needs the admin token. An account's API key cannot open it.", "error"),
    );
    return null;
  }
  return who;
}

export function fail(where, error) {
  where.replaceChildren(notice(error.message || String(error), "error"));
}
