import { defineConfig } from 'vitest/config';

// Browser tests: real headless Chromium against a real `berth serve` with
// real containers. Slow, serial.
export default defineConfig({
  test: {
    include: ['e2e/**/*.e2e.test.ts'],
    environment: 'node',
    testTimeout: 180_000,
    hookTimeout: 240_000,
    fileParallelism: false,
  },
});
