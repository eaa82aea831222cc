// HomePilot's extension to ComfyUI's frontend:
// - nodes that show text (graph outputs, primitive.Show, any node whose result carries
//   `text`) display it on the node, the way ComfyUI's own PreviewAny node does;
// - with nothing to restore, the editor opens HomePilot's imagine graph rather than
//   ComfyUI's default graph, whose nodes HomePilot does not have.
import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";
import {
  addTextPreviewWidgets,
  updateTextPreviewWidgets,
} from "../../extensions/core/textPreviewWidgets.js";

const SHOWS_TEXT = new Set(["graph.Output", "primitive.Show"]);
const DEFAULT_WORKFLOW = "workflows/HomePilot/imagine.json";

async function defaultWorkflow() {
  const response = await api.fetchApi("/userdata/" + encodeURIComponent(DEFAULT_WORKFLOW));
  return response.ok ? await response.json() : undefined;
}

function hasPreview(node) {
  return (node.widgets || []).some((w) => w.name === "preview_text");
}

function show(node, output) {
  if (!output || output.text == null) return;
  if (!hasPreview(node)) addTextPreviewWidgets(node);
  updateTextPreviewWidgets(node, output);
}

app.registerExtension({
  name: "HomePilot.DefaultWorkflow",
  async init() {
    const load = app.loadGraphData.bind(app);
    app.loadGraphData = async function (graphData, ...rest) {
      if (!graphData) graphData = await defaultWorkflow();
      return load(graphData, ...rest);
    };
  },
});

app.registerExtension({
  name: "HomePilot.TextOutputs",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.python_module !== "custom_nodes.HomePilot") return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      created?.apply(this, []);
      if (SHOWS_TEXT.has(nodeData.name)) addTextPreviewWidgets(this);
    };
    const executed = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      executed?.apply(this, [message]);
      show(this, message);
    };
  },
});
