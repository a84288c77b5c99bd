// Builds the dashboard into the Python package (twin/api/static/), served by the API at `/`.
// base "./" keeps every asset URL relative: the page loads nothing from another origin.
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: {
    outDir: "../twin/api/static",
    emptyOutDir: true,
    sourcemap: false,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
