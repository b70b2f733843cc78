import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The dashboard uses the TypeScript client from source (no separate build
// step) and builds into the Go package that embeds it.
export default defineConfig({
  plugins: [react()],
  resolve: {
    alias: { '@berth/client': fileURLToPath(new URL('../clients/typescript/src/index.ts', import.meta.url)) },
  },
  build: {
    outDir: fileURLToPath(new URL('../internal/web/dist/app', import.meta.url)),
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    proxy: { '/api': 'http://localhost:8000', '/ws': { target: 'ws://localhost:8000', ws: true }, '/health': 'http://localhost:8000' },
  },
});
