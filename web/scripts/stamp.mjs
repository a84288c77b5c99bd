// Records which sources the committed build came from: twin/api/static/build-info.json holds a hash
// of every file under web/ (node_modules excluded) and of every file the build wrote.
// tests/dashboard/test_build.py recomputes both, so a source edit without `make web`, or a hand edit
// of the build, fails the tests instead of shipping a stale dashboard.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const web = fileURLToPath(new URL("..", import.meta.url));
const out = join(web, "..", "twin", "api", "static", "build-info.json");
const SKIP = new Set(["node_modules", "dist"]);

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    if (SKIP.has(name)) return [];
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

const files = walk(web)
  .map((p) => relative(web, p).split(sep).join("/"))
  .sort((a, b) => (Buffer.from(a) < Buffer.from(b) ? -1 : Buffer.from(a) > Buffer.from(b) ? 1 : 0));
const total = createHash("sha256");
for (const f of files) {
  const digest = createHash("sha256").update(readFileSync(join(web, f))).digest("hex");
  total.update(`${f}\0${digest}\n`);
}
// and what the build wrote, so a hand edit of twin/api/static/ is caught as well
const staticDir = join(web, "..", "twin", "api", "static");
const output = Object.fromEntries(
  walk(staticDir)
    .map((p) => relative(staticDir, p).split(sep).join("/"))
    .filter((f) => f !== "build-info.json")
    .sort()
    .map((f) => [f, createHash("sha256").update(readFileSync(join(staticDir, f))).digest("hex")]),
);
const info = { sourceSha256: total.digest("hex"), files, output, built: "web/ (npm ci && npm run build)" };
writeFileSync(out, JSON.stringify(info, null, 2) + "\n");
console.log(`build-info: ${files.length} source files, sha256 ${info.sourceSha256}`);
