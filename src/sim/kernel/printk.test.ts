import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isKhoError } from '../../errors.ts';
import { formatTimestamp, KernelLog, SimClock } from './printk.ts';

const VEC = new URL('../../../test/vectors/linux-7.3.4/', import.meta.url);

test("timestamps are formatted like the vectors' dmesg ([%5lu.%06lu])", () => {
  // every timestamp prefix in a real dmesg re-formats to itself
  const lines = readFileSync(new URL('flat-explicit/stage2/dmesg', VEC), 'utf8').split('\n').filter(Boolean);
  let n = 0;
  for (const l of lines) {
    const m = /^\[ *(\d+)\.(\d{6})\]/.exec(l);
    if (!m) continue;
    const ns = (BigInt(m[1]) * 1_000_000n + BigInt(m[2])) * 1000n;
    assert.equal(formatTimestamp(ns), m[0]);
    n++;
  }
  assert.ok(n > 300);
  assert.equal(formatTimestamp(0n), '[    0.000000]');
  assert.equal(formatTimestamp(123_456_789_999n), '[  123.456789]'); // truncated, not rounded
  assert.equal(formatTimestamp(100_000n * 1_000_000_000n), '[100000.000000]');
});

test('records before timekeeping are stamped 0; stages move the clock forward only', () => {
  const log = new KernelLog();
  log.notice('Linux version 7.3.4-khovec');
  log.info('KHO: scratch areas: lowmem: 16MiB global: 64MiB pernode: 32MiB');
  log.clock.enterStage('mm_init');
  log.info('Memory: ...');
  log.info('next');
  log.clock.enterStage('timekeeping'); // earlier stage: no effect
  log.clock.enterStage('initcalls');
  log.info('KHO: exec from: 7.3.4-khovec (count 1)');
  assert.equal(
    log.dmesg(),
    [
      '[    0.000000] Linux version 7.3.4-khovec',
      '[    0.000000] KHO: scratch areas: lowmem: 16MiB global: 64MiB pernode: 32MiB',
      '[    0.400000] Memory: ...',
      '[    0.400010] next',
      '[    1.000000] KHO: exec from: 7.3.4-khovec (count 1)',
      '',
    ].join('\n'),
  );
  const ts = log.records.map((r) => r.tsNs);
  for (let i = 1; i < ts.length; i++) assert.ok(ts[i] >= ts[i - 1]);
  assert.throws(
    () => new SimClock().advance(-1n),
    (e) => isKhoError(e, 'SIM_BAD_ARGUMENT'),
  );
});

test('levels: filtering and raw priorities; multi-line text becomes one record per line', () => {
  const log = new KernelLog();
  log.err('KHO: Failed to reserve lowmem scratch buffer');
  log.warn('KHO: Failed to reserve scratch area, disabling kexec handover');
  log.debug('noise');
  log.info('a\nb\n');
  assert.equal(log.records.length, 5);
  assert.equal(
    log.dmesg({ maxLevel: 'warning', raw: true }),
    '<3>[    0.000000] KHO: Failed to reserve lowmem scratch buffer\n<4>[    0.000000] KHO: Failed to reserve scratch area, disabling kexec handover\n',
  );
  assert.deepEqual(log.messages().slice(3), ['a', 'b']);
  log.emit(
    { level: 'warning', text: "Malformed early option 'kho_scratch'" },
    { level: 'notice', text: 'x' },
  );
  assert.deepEqual(
    log.records.slice(-2).map((r) => [r.level, r.text]),
    [
      ['warning', "Malformed early option 'kho_scratch'"],
      ['notice', 'x'],
    ],
  );
});

test('the buffer drops the oldest records past its capacity', () => {
  const log = new KernelLog({ capacityBytes: 10 });
  for (const t of ['aaaa', 'bbbb', 'cccc']) log.info(t);
  assert.deepEqual(log.messages(), ['bbbb', 'cccc']);
  assert.equal(log.records[0].seq, 1);
});
