import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  plugins: [react()],
  resolve: {
    alias: { '@berth/client': fileURLToPath(new URL('../clients/typescript/src/index.ts', import.meta.url)) },
  },
  test: { include: ['test/**/*.test.tsx', 'test/**/*.test.ts'], environment: 'jsdom' },
});
