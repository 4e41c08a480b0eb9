// Parse mermaid charts with mermaid's own parser (tests/test_mermaid.py).
// stdin: a JSON array of chart texts (a fence's content). stdout: a JSON array, one result per
// chart: {ok: false, error} when mermaid rejects it, else {ok: true, diagramType, config (from
// the init directive), and for an xychart what mermaid read: title, orientation, categories,
// yAxis, plots [{type, title, values}]}.
import { JSDOM } from "jsdom";

// mermaid.parse sanitizes text with DOMPurify, which needs a window when it is imported.
const { window } = new JSDOM("");
globalThis.window = window;
globalThis.document = window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false, securityLevel: "strict" });

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString("utf8");
}

function xychart(db) {
  const data = db.getXYChartData();
  return {
    title: db.getDiagramTitle(),
    orientation: db.getChartConfig().chartOrientation,
    categories: data.xAxis.categories ?? null,
    yAxis: { title: data.yAxis.title, min: data.yAxis.min, max: data.yAxis.max },
    plots: data.plots.map((plot) => ({ type: plot.type, title: plot.title, values: plot.data.map((point) => point[1]) })),
  };
}

async function parseOne(text) {
  try {
    const parsed = await mermaid.parse(text);
    const result = { ok: true, diagramType: parsed.diagramType, config: parsed.config ?? {} };
    if (parsed.diagramType === "xychart") {
      const diagram = await mermaid.mermaidAPI.getDiagramFromText(text);
      Object.assign(result, xychart(diagram.db));
    }
    return result;
  } catch (error) {
    return { ok: false, error: String(error?.message ?? error) };
  }
}

const texts = JSON.parse(await readStdin());
const results = [];
for (const text of texts) results.push(await parseOne(text));
process.stdout.write(JSON.stringify(results));
