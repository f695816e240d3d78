// The playground: one chat request to the real /chat/completions, streamed or not, with the
// reasoning shown apart from the answer, and the request written out as curl and Python.
import { api, count, fail, h, money, notice, session, start, table } from "./common.js";

const who = start("playground");
const admin = who?.role === "admin";
const $ = (id) => document.getElementById(id);
const form = $("ask");
const out = { reasoning: $("reasoning"), answer: $("answer"), calls: $("tool-calls"), usage: $("usage"), error: $("error") };
$("key-field").hidden = !admin;
let running = null;

function request() {
  const messages = [];
  if ($("system").value.trim()) messages.push({ role: "system", content: $("system").value });
  messages.push({ role: "user", content: $("prompt").value });
  const body = { model: $("model").value, messages, max_tokens: Number($("max-tokens").value) || 256 };
  const thinking = $("thinking").checked;
  body.thinking = { type: thinking ? "enabled" : "disabled" };
  if (thinking) body.reasoning_effort = $("effort").value;
  if ($("json-mode").checked) body.response_format = { type: "json_object" };
  const tools = $("tools").value.trim();
  if (tools) body.tools = JSON.parse(tools);
  if ($("stream").checked) {
    body.stream = true;
    body.stream_options = { include_usage: true };
  }
  return body;
}

function pythonLiteral(value, indent = "") {
  if (value === null) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    const inner = indent + "    ";
    return `[\n${value.map((v) => inner + pythonLiteral(v, inner)).join(",\n")},\n${indent}]`;
  }
  if (typeof value === "object") {
    const inner = indent + "    ";
    const items = Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${pythonLiteral(v, inner)}`);
    return items.length ? `{\n${items.join(",\n")},\n${indent}}` : "{}";
  }
  return JSON.stringify(value);
}

function code() {
  let body;
  try {
    body = request();
  } catch {
    $("curl").value = $("python").value = "The tools are not valid JSON.";
    return;
  }
  const url = `${location.origin}/chat/completions`;
  const quoted = JSON.stringify(body, null, 2).replaceAll("'", "'\\''");
  $("curl").value = `curl ${url} \\\n  -H "Content-Type: application/json" \\\n  -H "Authorization: Bearer $DEEPSEEK_API_KEY" \\\n  -d '${quoted}'`;
  const { model, messages, thinking, stream, stream_options: _, ...rest } = body;
  const args = [`    model=${JSON.stringify(model)},`, `    messages=${pythonLiteral(messages, "    ")},`];
  for (const [name, value] of Object.entries(rest)) args.push(`    ${name}=${pythonLiteral(value, "    ")},`);
  args.push(`    extra_body={"thinking": ${pythonLiteral(thinking, "    ")}},`);
  if (stream) args.push("    stream=True,");
  const read = stream
    ? `for chunk in reply:\n    if chunk.choices:\n        delta = chunk.choices[0].delta\n        print(getattr(delta, "reasoning_content", None) or delta.content or "", end="")`
    : `print(reply.choices[0].message.content)`;
  $("python").value = `import os\n\nfrom openai import OpenAI\n\nclient = OpenAI(api_key=os.environ["DEEPSEEK_API_KEY"], base_url=${JSON.stringify(location.origin)})\nreply = client.chat.completions.create(\n${args.join("\n")}\n)\n${read}\n`;
}

function secret() {
  return admin ? $("key").value.trim() : session().secret;
}

function clear() {
  out.reasoning.textContent = "";
  out.answer.textContent = "";
  out.calls.textContent = "";
  out.calls.hidden = true;
  out.error.replaceChildren();
  out.usage.replaceChildren(h("p", { class: "muted" }, "Waiting for the reply…"));
}

const calls = [];
function addCalls(deltas) {
  for (const d of deltas || []) {
    const call = (calls[d.index ?? 0] ||= { id: d.id, name: "", arguments: "" });
    if (d.function?.name) call.name += d.function.name;
    if (d.function?.arguments) call.arguments += d.function.arguments;
  }
  if (calls.length) {
    out.calls.hidden = false;
    out.calls.textContent = calls.map((c) => `${c.name}(${c.arguments})`).join("\n");
  }
}

async function readStream(response, onChunk) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, end).trim();
      buffer = buffer.slice(end + 1);
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      onChunk(JSON.parse(data));
    }
  }
}

async function send() {
  const body = request();
  const key = secret();
  if (!key) throw new Error("Enter an API key to run as.");
  clear();
  calls.length = 0;
  running = new AbortController();
  const response = await fetch("/chat/completions", {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "omit",
    signal: running.signal,
  });
  if (!response.ok) {
    const data = await response.json().catch(() => null);
    throw new Error(data?.error?.message || `${response.status} ${response.statusText}`);
  }
  const requestId = response.headers.get("x-request-id");
  let usage = null;
  let finish = null;
  if (body.stream) {
    await readStream(response, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message);
      if (chunk.usage) usage = chunk.usage;
      for (const choice of chunk.choices || []) {
        if (choice.delta?.reasoning_content) out.reasoning.textContent += choice.delta.reasoning_content;
        if (choice.delta?.content) out.answer.textContent += choice.delta.content;
        addCalls(choice.delta?.tool_calls);
        finish = choice.finish_reason || finish;
      }
    });
  } else {
    const reply = await response.json();
    const message = reply.choices[0].message;
    out.reasoning.textContent = message.reasoning_content || "";
    out.answer.textContent = message.content || "";
    addCalls((message.tool_calls || []).map((c, index) => ({ ...c, index })));
    usage = reply.usage;
    finish = reply.choices[0].finish_reason;
  }
  if (!out.reasoning.textContent) out.reasoning.textContent = body.thinking.type === "enabled" ? "(none)" : "(thinking is off)";
  await showUsage(usage, finish, requestId, key);
}

async function settled(requestId, key) {
  // The ledger settles a request just after its last byte; ask a few times.
  for (let i = 0; i < 10 && requestId; i += 1) {
    const response = await fetch(`/console/api/requests/${encodeURIComponent(requestId)}`, {
      headers: { Authorization: `Bearer ${key}` },
      credentials: "omit",
      cache: "no-store",
    });
    if (response.ok) return response.json();
    await new Promise((done) => setTimeout(done, 300));
  }
  return null;
}

async function showUsage(usage, finish, requestId, key) {
  const charge = await settled(requestId, key);
  const u = usage || {};
  const rows = [
    ["Finish reason", finish || "—"],
    ["Prompt tokens", count(u.prompt_tokens ?? 0)],
    ["of which cache hits", count(u.prompt_cache_hit_tokens ?? 0)],
    ["of which cache misses", count(u.prompt_cache_miss_tokens ?? 0)],
    ["Completion tokens", count(u.completion_tokens ?? 0)],
    ["of which reasoning", count(u.completion_tokens_details?.reasoning_tokens ?? 0)],
    ["Cost", charge ? money(charge.cost, charge.currency) : "not settled yet"],
    ["Request id", requestId || "—"],
  ];
  out.usage.replaceChildren(
    table("Usage of the reply", [
      { label: "What", value: (r) => r[0] },
      { label: "Value", num: true, value: (r) => r[1] },
    ], rows),
  );
}

async function models() {
  const response = await fetch("/status.json", { cache: "no-store" });
  const status = await response.json();
  const ids = status.components.flatMap((c) => c.models);
  $("model").replaceChildren(...ids.map((id) => h("option", { value: id }, id)));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  $("send").disabled = true;
  $("stop").disabled = false;
  try {
    await send();
  } catch (error) {
    if (error.name !== "AbortError") out.error.replaceChildren(notice(error.message, "error"));
    out.usage.replaceChildren();
  } finally {
    $("send").disabled = false;
    $("stop").disabled = true;
    running = null;
  }
});
$("stop").addEventListener("click", () => running?.abort());
form.addEventListener("input", code);
form.addEventListener("change", code);
$("thinking").addEventListener("change", () => ($("effort").disabled = !$("thinking").checked));
for (const button of document.querySelectorAll("[data-copy]")) {
  button.addEventListener("click", () => navigator.clipboard?.writeText($(button.dataset.copy).value));
}

if (who) models().then(code, (error) => fail(out.error, error));
