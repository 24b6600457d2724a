// Drives a running `metareward serve` with the official `openai` npm client (pinned in
// package-lock.json). Usage: node serve_openai_test.mjs BASE_URL   (e.g. http://127.0.0.1:8000)
// Run by run_openai_tests.sh (ctest: npm/openai_client), which starts the server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const base = process.argv[2] ?? process.env.MR_SERVE_URL;
if (!base) {
  console.error('usage: node serve_openai_test.mjs BASE_URL');
  process.exit(2);
}
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 120_000 });
const models = await client.models.list();
const model = models.data[0].id;
const messages = [{ role: 'user', content: 'Sort 3 1 2' }];
const chat = (extra) =>
  client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0.9, ...extra });
const contents = (completion) => completion.choices.map((c) => c.message.content);

test('models lists the served model', () => {
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].object, 'model');
  assert.equal(models.data[0].owned_by, 'metareward');
});

test('chat completion', async () => {
  const r = await chat({ seed: 1 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.model, model);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.prompt_tokens > 0);
  assert.equal(r.usage.completion_tokens, r.choices[0].completion_tokens);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
});

test('n = 3, reproducible per seed', async () => {
  const a = await chat({ n: 3, seed: 42 });
  assert.deepEqual(a.choices.map((c) => c.index), [0, 1, 2]);
  const b = await chat({ n: 3, seed: 42 });
  assert.deepEqual(contents(b), contents(a));
  const c = await chat({ n: 3, seed: 43 });
  assert.notDeepEqual(contents(c), contents(a));
  // The samples of one request differ from each other.
  assert.ok(new Set(contents(a)).size > 1, JSON.stringify(contents(a)));
});

test('streaming assembles to the non-streamed response', async () => {
  const whole = await chat({ n: 2, seed: 7 });
  const stream = await chat({ n: 2, seed: 7, stream: true, stream_options: { include_usage: true } });
  const text = ['', ''];
  const finish = [null, null];
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    ++chunks;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text[choice.index] += choice.delta.content ?? '';
      if (choice.finish_reason) finish[choice.index] = choice.finish_reason;
    }
  }
  assert.ok(chunks >= 4);
  assert.deepEqual(text, contents(whole));
  assert.deepEqual(finish, whole.choices.map((c) => c.finish_reason));
  assert.deepEqual(usage, whole.usage);
});

test('stop strings cut the completion', async () => {
  const whole = await chat({ seed: 9, max_tokens: 32 });
  const full = whole.choices[0].message.content;
  // An ASCII letter or digit of the completion (first seen after its start) as the stop string.
  const k = [...full].findIndex((ch, i) => i > 0 && /[A-Za-z0-9]/.test(ch) && full.indexOf(ch) === i);
  assert.ok(k > 0, `no usable stop character in ${JSON.stringify(full)}`);
  const stop = [...full][k];
  const cut = await chat({ seed: 9, max_tokens: 32, stop: [stop] });
  const text = cut.choices[0].message.content;
  assert.ok(!text.includes(stop));
  assert.ok(full.startsWith(text));
  assert.ok(text.length < full.length);
  assert.equal(cut.choices[0].finish_reason, 'stop');
});

test('completions endpoint', async () => {
  const r = await client.completions.create({ model, prompt: 'Sort 3 1 2', max_tokens: 12, seed: 3 });
  assert.equal(r.object, 'text_completion');
  assert.equal(typeof r.choices[0].text, 'string');
  const again = await client.completions.create({ model, prompt: 'Sort 3 1 2', max_tokens: 12, seed: 3 });
  assert.equal(again.choices[0].text, r.choices[0].text);
});

test('bad requests raise BadRequestError (400) with the message', async () => {
  await assert.rejects(chat({ temperature: -1 }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError, String(e));
    assert.equal(e.status, 400);
    assert.match(e.message, /temperature/);
    assert.equal(e.param, 'temperature');
    return true;
  });
  await assert.rejects(chat({ n: 0 }), (e) => e instanceof OpenAI.BadRequestError && e.status === 400);
  await assert.rejects(chat({ logprobs: true }), (e) => {
    assert.ok(e instanceof OpenAI.BadRequestError);
    assert.match(e.message, /not supported/);
    return true;
  });
  await assert.rejects(chat({ model: 'no-such-model' }), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError, String(e));
    assert.equal(e.code, 'model_not_found');
    return true;
  });
});
