// The OpenAI Node SDK against deepwell: a reply, a raw stream, the stream helper with a
// forced tool call, and FIM on the /beta base. Prints one JSON object; throws on a
// broken contract (the SDK's own checks throw too).
import assert from "node:assert/strict";
import OpenAI from "openai";

const baseURL = process.env.DEEPWELL_BASE_URL;
const apiKey = process.env.DEEPWELL_API_KEY;
const model = "deepseek-v4-flash";
const plain = { thinking: { type: "disabled" } };
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const out = {};

const reply = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Say hi." }],
  max_tokens: 8,
  ...plain,
});
assert.equal(typeof reply.choices[0].message.content, "string");
out.reply = reply.choices[0].message.content;
out.usage = reply.usage;

// Thinking on (the default): reasoning comes in delta.reasoning_content.
const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "Say hi." }],
  max_tokens: 16,
  stream: true,
  stream_options: { include_usage: true },
});
let reasoning = "";
let content = "";
let last;
for await (const chunk of stream) {
  assert.equal(chunk.choices.length, 1);
  reasoning += chunk.choices[0].delta.reasoning_content ?? "";
  content += chunk.choices[0].delta.content ?? "";
  last = chunk;
}
assert.ok(last.choices[0].finish_reason);
assert.ok(last.usage.completion_tokens > 0);
out.stream = { reasoning, content, usage: last.usage };

// The helper assembles the snapshot from the chunks; it checks finish_reason, role and
// each call's id, type, name and arguments at the end.
const helper = client.chat.completions.stream({
  model,
  messages: [{ role: "user", content: "What is the weather in Paris?" }],
  tools: [
    {
      type: "function",
      function: {
        name: "get_weather",
        description: "Get the current weather of a city.",
        parameters: {
          type: "object",
          properties: { city: { type: "string" } },
          required: ["city"],
        },
      },
    },
  ],
  tool_choice: { type: "function", function: { name: "get_weather" } },
  max_tokens: 40,
  temperature: 0,
  ...plain,
});
const completion = await helper.finalChatCompletion();
const call = completion.choices[0].message.tool_calls[0];
assert.equal(call.function.name, "get_weather");
assert.match(call.id, /^call_00_/);
out.call = { name: call.function.name, arguments: JSON.parse(call.function.arguments) };
out.helperUsage = completion.usage;

const beta = new OpenAI({ baseURL: `${baseURL}/beta`, apiKey, maxRetries: 0 });
const fim = await beta.completions.create({
  model,
  prompt: "def is_even(n: int) -> bool:\n",
  suffix: "\n\nassert is_even(4)\n",
  max_tokens: 12,
});
assert.equal(typeof fim.choices[0].text, "string");
out.fim = fim.choices[0].text;

console.log(JSON.stringify(out));
