// Renders Vega-Lite specs to SVG with the very npm packages the offline plots page inlines
// (package-lock.json), so a spec those versions cannot draw fails the test.
// Usage: node tests/render_vega.mjs spec1.json [spec2.json ...]; prints "<file> <svg bytes>".
import { readFileSync } from "node:fs";
import * as vega from "vega";
import * as vegaLite from "vega-lite";

let failed = false;
for (const file of process.argv.slice(2)) {
  try {
    const spec = JSON.parse(readFileSync(file, "utf8"));
    const compiled = spec.$schema?.includes("vega-lite") ? vegaLite.compile(spec).spec : spec;
    const view = new vega.View(vega.parse(compiled), { renderer: "none" });
    const svg = await view.toSVG();
    console.log(`${file} ${svg.length}`);
  } catch (error) {
    console.error(`${file}: ${error.message}`);
    failed = true;
  }
}
process.exit(failed ? 1 : 0);
