/**
 * Loaded into every test process (scripts/test.sh passes `--import`): fast-check runs with a fixed seed so
 * that CI is deterministic. Set FC_SEED to another number, or to `random`, to explore further; a failure
 * prints its seed so it can be replayed.
 */
import fc from 'fast-check';

const env = process.env.FC_SEED;
if (env !== 'random') {
  fc.configureGlobal({ seed: env === undefined ? 0x6b686f : Number(env) });
}
