// The DAG of one strategy as a cytoscape graph laid out by dagre (left to right).
import cytoscape from "cytoscape";
import dagre from "cytoscape-dagre";

cytoscape.use(dagre);

const COLOURS = { new: "#2f80ed", reused: "#27ae60", buffering: "#f2994a", failed: "#eb5757" };

// new / reused / buffering / failed from the strategy's diff and its node states; failed wins.
export function nodeClass(nodeId, diff, failed) {
  if (failed.has(nodeId)) return "failed";
  if ((diff.bufferNodes || []).some((b) => b.nodeId === nodeId)) return "buffering";
  if ((diff.reusedNodeIds || []).includes(nodeId)) return "reused";
  if ((diff.newNodeIds || []).includes(nodeId)) return "new";
  return "unknown";
}

export function graphElements(strategy, status, sharing) {
  const dag = strategy.dag || {};
  const diff = strategy.diff || {};
  const failed = new Set(
    ((status && status.nodeStates) || [])
      .filter((s) => s.status === "NODE_STATUS_FAILED")
      .map((s) => s.nodeId),
  );
  const queues = (diff.queueMap && diff.queueMap.queues) || {};
  const nodes = (dag.nodes || []).map((node) => ({
    data: {
      id: node.nodeId,
      label: node.name || `${(node.spec && node.spec.nodeType) || "node"} ${node.nodeId.replace(/^[a-z0-9]+:/, "").slice(0, 8)}`,
      state: nodeClass(node.nodeId, diff, failed),
      topic: (queues[node.nodeId] && queues[node.nodeId].queue) || "",
      sharedBy: (sharing.get(node.nodeId) || []).join(", "),
    },
  }));
  const ids = new Set(nodes.map((n) => n.data.id));
  // The DAG's edges and each node's declared dependencies, once each.
  const pairs = new Map();
  for (const e of dag.edges || []) pairs.set(`${e.source}->${e.target}`, e);
  for (const node of dag.nodes || []) {
    for (const dep of (node.spec && node.spec.dependencies) || []) {
      pairs.set(`${dep}->${node.nodeId}`, { source: dep, target: node.nodeId });
    }
  }
  const edges = [...pairs.entries()]
    .filter(([, e]) => ids.has(e.source) && ids.has(e.target))
    .map(([id, e]) => ({ data: { id, source: e.source, target: e.target } }));
  return [...nodes, ...edges];
}

export function drawGraph(container, elements, onHover) {
  const cy = cytoscape({
    container,
    elements,
    layout: { name: "dagre", rankDir: "LR", nodeSep: 30, rankSep: 150, fit: true, padding: 30 },
    maxZoom: 1.5,
    style: [
      {
        selector: "node",
        style: {
          label: "data(label)",
          "background-color": "#9e9e9e",
          color: "#1d1d1f",
          "font-size": 11,
          "text-valign": "bottom",
          "text-margin-y": 4,
          width: 26,
          height: 26,
        },
      },
      ...Object.entries(COLOURS).map(([state, colour]) => ({
        selector: `node[state = "${state}"]`,
        style: { "background-color": colour },
      })),
      {
        selector: "edge",
        style: {
          width: 2,
          "line-color": "#b0b0b0",
          "target-arrow-color": "#b0b0b0",
          "target-arrow-shape": "triangle",
          "curve-style": "bezier",
        },
      },
    ],
    userZoomingEnabled: true,
    boxSelectionEnabled: false,
    autoungrabify: true,
  });
  cy.on("mouseover", "node", (event) => onHover(event.target.data()));
  cy.on("mouseout", "node", () => onHover(null));
  return cy;
}
