// A plain and a streamed chat completion through llmtap, with the official `openai` package.
//
//   cd examples/node && npm install
//   node chat.mjs
//
// The only change an app needs is the base URL: llmtap speaks the OpenAI API and records a
// `chat <model>` span and the gen_ai metrics for each call.
//
// Environment: OPENAI_BASE_URL (default http://127.0.0.1:8080/v1), OPENAI_API_KEY (default
// sk-demo), OPENAI_MODEL (default gpt-4o-mini).

import OpenAI from "openai";

const baseURL = process.env.OPENAI_BASE_URL || "http://127.0.0.1:8080/v1";
const apiKey = process.env.OPENAI_API_KEY || "sk-demo";
const model = process.env.OPENAI_MODEL || "gpt-4o-mini";

const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 120_000 });

async function plain() {
  const response = await client.chat.completions.create({
    model,
    messages: [
      { role: "system", content: "You are a technical summarizer." },
      { role: "user", content: "Summarize what a reverse proxy does in one sentence." },
    ],
    temperature: 0.3,
    max_tokens: 200,
  });
  const choice = response.choices[0];
  console.log(`[plain] model=${response.model} finish_reason=${choice.finish_reason}`);
  console.log(choice.message.content);
  if (response.usage) {
    console.log(
      `[plain] tokens: input=${response.usage.prompt_tokens} output=${response.usage.completion_tokens}`,
    );
  }
}

async function streamed() {
  // No stream_options: llmtap requests the usage chunk from the upstream itself, records
  // the token counts, and strips that chunk again before it reaches this client.
  const start = performance.now();
  let firstTokenMs;
  let chunks = 0;
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: "user", content: "Count from one to ten, in words." }],
    stream: true,
  });
  process.stdout.write("[stream] ");
  for await (const chunk of stream) {
    const delta = chunk.choices[0]?.delta?.content;
    if (delta) {
      firstTokenMs ??= performance.now() - start;
      chunks += 1;
      process.stdout.write(delta);
    }
  }
  process.stdout.write("\n");
  const ttft = firstTokenMs === undefined ? "n/a" : `${firstTokenMs.toFixed(0)} ms`;
  console.log(`[stream] ${chunks} content chunks, time to first token ${ttft} (client side)`);
}

try {
  await plain();
  await streamed();
} catch (err) {
  console.error(`request failed: ${err.message}`);
  process.exitCode = 1;
}
