// Bundles the widget into ../voxline/web/widget.js (package data of the Python package).
//
// @daily-co/daily-js is aliased to a stub: the Pipecat transports import it for their
// default media manager, which loads Daily's call machine from Daily's CDN. The widget
// passes media managers of its own (src/media.js), so nothing of Daily runs, and a
// page that embeds us loads no third-party code.
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import path from "node:path";

const here = path.dirname(fileURLToPath(import.meta.url));
const result = await build({
  entryPoints: [path.join(here, "src/index.js")],
  outfile: path.join(here, "../voxline/web/widget.js"),
  bundle: true,
  format: "iife",
  target: ["es2020"],
  minify: true,
  legalComments: "none",
  alias: { "@daily-co/daily-js": path.join(here, "src/daily-stub.js") },
  define: { "process.env.NODE_ENV": '"production"' },
  metafile: true,
  logLevel: "warning",
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(`widget.js: ${(bytes / 1024).toFixed(0)} KB`);
