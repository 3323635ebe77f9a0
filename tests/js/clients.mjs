// Drives the official JavaScript clients against a herd router: node clients.mjs <router-url> <model>.
// Prints one JSON object {check: result} on stdout; exits 1 (with the error on stderr) when a check fails.
import { Ollama } from "ollama";
import OpenAI from "openai";
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, jsonSchema, stepCountIs, streamText, tool } from "ai";

const [url, model] = process.argv.slice(2);
const out = {};

const ollama = new Ollama({ host: url });
out.ollama_chat = (await ollama.chat({ model, messages: [{ role: "user", content: "hi" }] })).message.content;
let streamed = "";
for await (const part of await ollama.chat({ model, messages: [{ role: "user", content: "hi" }], stream: true })) {
  streamed += part.message.content;
}
out.ollama_chat_stream = streamed;
out.ollama_list = (await ollama.list()).models.map((m) => m.name);

const openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: "herd", maxRetries: 0 });
const chat = await openai.chat.completions.create({ model, messages: [{ role: "user", content: "hi" }] });
out.openai_chat = chat.choices[0].message.content;
out.openai_responses = (await openai.responses.create({ model, input: "hi" })).output_text;
let deltas = "";
for await (const event of await openai.responses.create({ model, input: "hi", stream: true })) {
  if (event.type === "response.output_text.delta") deltas += event.delta;
}
out.openai_responses_stream = deltas;

const provider = createOpenAI({ baseURL: `${url}/v1`, apiKey: "herd" });
out.ai_generate = (await generateText({ model: provider(model), prompt: "hi", maxRetries: 0 })).text;
const result = streamText({ model: provider(model), prompt: "hi", maxRetries: 0 });
let text = "";
for await (const piece of result.textStream) text += piece;
out.ai_stream = text;

// A second turn refers back to the first answer (the SDK sends an item_reference by default), and a tool call
// runs over two steps (function_call, then function_call_output).
const first = await generateText({ model: provider(model), prompt: "hi", maxRetries: 0 });
const followUp = await generateText({
  model: provider(model),
  messages: [{ role: "user", content: "hi" }, ...first.response.messages, { role: "user", content: "and?" }],
  maxRetries: 0,
});
out.ai_second_turn = followUp.text;
const weather = tool({
  description: "Weather in a city",
  inputSchema: jsonSchema({ type: "object", properties: { location: { type: "string" } }, required: ["location"] }),
  execute: async ({ location }) => `sunny in ${location}`,
});
const withTools = await generateText({
  model: provider(model),
  prompt: "what is the weather in Paris?",
  tools: { get_weather: weather },
  stopWhen: stepCountIs(2),
  maxRetries: 0,
});
out.ai_tool_steps = withTools.text;
out.ai_tool_calls = withTools.steps[0].toolCalls.map((c) => [c.toolName, c.input]);

console.log(JSON.stringify(out));
