// The Vercel AI SDK's DeepSeek provider against deepwell: streamText with a tool, run
// for two steps (a call of the named tool with thinking off, then the answer with
// tool_choice none). Prints one JSON
// object; throws on a broken contract.
import assert from "node:assert/strict";
import { createDeepSeek } from "@ai-sdk/deepseek";
import { isStepCount, streamText, tool } from "ai";
import { z } from "zod";

const deepseek = createDeepSeek({
  baseURL: process.env.DEEPWELL_BASE_URL,
  apiKey: process.env.DEEPWELL_API_KEY,
});
const asked = [];
const result = streamText({
  model: deepseek("deepseek-v4-flash"),
  prompt: "What is the weather in Paris?",
  maxOutputTokens: 40,
  temperature: 0,
  maxRetries: 0,
  providerOptions: { deepseek: { thinking: { type: "disabled" } } },
  tools: {
    get_weather: tool({
      description: "Get the current weather of a city.",
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => {
        asked.push(city);
        return `It is sunny in ${city}.`;
      },
    }),
  },
  stopWhen: isStepCount(2),
  prepareStep: ({ stepNumber }) => ({
    toolChoice: stepNumber === 0 ? { type: "tool", toolName: "get_weather" } : "none",
  }),
});
let text = "";
const errors = [];
for await (const part of result.fullStream) {
  if (part.type === "text-delta") text += part.text;
  if (part.type === "error") errors.push(String(part.error));
}
assert.deepEqual(errors, []);
const steps = await result.steps;
assert.equal(steps.length, 2);
assert.equal(steps[0].finishReason, "tool-calls");
assert.ok(asked.length >= 1);
const usage = await result.totalUsage;
assert.ok(usage.outputTokens > 0);
console.log(
  JSON.stringify({
    asked,
    text,
    finishReasons: steps.map((step) => step.finishReason),
    usage,
  }),
);
