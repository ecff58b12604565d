/**
 * Error assertions for tests: `codeOf(fn)` runs `fn` and returns the `code` of the KhoError it throws,
 * or 'no error'; any other throw fails the test (hostile input must only ever raise a KhoError).
 */
import assert from 'node:assert/strict';
import { isKhoError } from '../../src/errors.ts';

/** The KhoError code `fn` throws, or 'no error'; anything else thrown fails the assertion. */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'no error';
  } catch (e) {
    assert.ok(isKhoError(e));
    return e.code;
  }
}
