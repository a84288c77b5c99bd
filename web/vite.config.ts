// Builds the dashboard into the Python package (twin/api/static/), served by the API at `/`.
// base "./" keeps every asset URL relative: the page loads nothing from another origin.
// `npm run dev` serves the sources with hot reload and forwards /api to a running `twin api`
// (TWIN_API, default http://127.0.0.1:8080).
import { defineConfig } from "vite";

declare const process: { env: Record<string, string | undefined> }; // Node's, without @types/node

export default defineConfig({
  base: "./",
  build: {
    outDir: "../twin/api/static",
    emptyOutDir: true,
    sourcemap: false,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: {
    host: "127.0.0.1",
    proxy: { "/api": { target: process.env.TWIN_API ?? "http://127.0.0.1:8080" } },
  },
});
