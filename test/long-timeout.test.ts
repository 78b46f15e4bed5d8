// --duration of any length: a timer chain against one deadline, never Node's 1 ms for long delays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { MAX_TIMER_MS, setLongTimeout } from '../src/util/long-timeout.js';

test('a delay above 2^31-1 ms (--duration 2147484) does not fire after 1 ms', async () => {
  let fired = false;
  const cancel = setLongTimeout(() => (fired = true), (MAX_TIMER_MS + 1000) );
  await sleep(50);
  cancel();
  assert.equal(fired, false);
});

test('a chain of short steps fires once, at the deadline, not before', async () => {
  const started = performance.now();
  let firedAt = 0;
  let count = 0;
  await new Promise<void>((resolve) => {
    setLongTimeout(() => {
      firedAt = performance.now();
      count++;
      resolve();
    }, 120, 25);
  });
  await sleep(60);
  assert.equal(count, 1);
  assert.ok(firedAt - started >= 119, `fired after ${firedAt - started} ms`);
});

test('cancel stops the chain between steps', async () => {
  let fired = false;
  const cancel = setLongTimeout(() => (fired = true), 80, 20);
  await sleep(45);
  cancel();
  await sleep(80);
  assert.equal(fired, false);
});
