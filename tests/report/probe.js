// Appended to a copy of report.html by render.sh (the report itself has no
// scripts): measures each chart as laid out, its box on the page and the
// shapes drawn in it, and writes one line per chart into #probe.
const lines = [];
document.querySelectorAll("svg").forEach((svg, i) => {
  const box = svg.getBoundingClientRect();
  const shapes = svg.querySelectorAll("rect, path, line, polyline, polygon, circle, text").length;
  const id = svg.id || (svg.closest("[id]") || {}).id || "svg" + i;
  lines.push(["chart", id, Math.round(box.width), Math.round(box.height), shapes].join(" "));
});
lines.push("height " + document.documentElement.scrollHeight);
document.getElementById("probe").textContent = lines.join("\n");
