// The air3d page: image -> POST /infer -> object list, markers, fit, JSON -> POST /render
// -> reconstruction and its difference from the input.
"use strict";

const $ = (id) => document.getElementById(id);
const state = (name, text) => {
  document.body.dataset.state = name;
  $("status").textContent = text;
};

function headers() {
  const key = $("key").value || localStorage.getItem("air3d-key") || "";
  return key ? { "X-API-Key": key } : {};
}

function fmt(x) { return Number(x).toFixed(2); }

async function analyze(blob) {
  state("working", "Inferring the objects...");
  const input = $("input");
  if (input.src) URL.revokeObjectURL(input.src);
  input.src = URL.createObjectURL(blob);
  document.querySelectorAll(".marker").forEach((m) => m.remove());
  $("objects").replaceChildren();
  for (const id of ["reconstruction", "difference"]) $(id).removeAttribute("src");
  $("difference-value").textContent = "";
  $("fit").hidden = true;
  $("json-actions").hidden = true;
  $("json").textContent = "";
  const form = new FormData();
  form.append("image", blob, "image.png");
  const response = await fetch("/infer", { method: "POST", body: form, headers: headers() });
  const body = await response.json();
  if (!response.ok) throw new Error(`${response.status}: ${body.detail}`);
  showAnswer(body);
  state("rendering", "Drawing the reconstruction...");
  const render = await fetch("/render", {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", ...headers() },
  });
  if (!render.ok) throw new Error(`render ${render.status}: ${(await render.json()).detail}`);
  const drawn = await render.blob();
  $("reconstruction").src = URL.createObjectURL(drawn);
  await showDifference(blob, drawn, body.model.image_size, frameRows(body.model));
  const found = `${body.count} object${body.count === 1 ? "" : "s"}`;
  state("done", body.fit && body.fit.not_a_scene
    ? `Not a scene: the ${found} found do not explain it (${fmt(body.timing_ms.total)} ms).`
    : `Found ${found} in ${fmt(body.timing_ms.total)} ms.`);
}

function showAnswer(body) {
  showObjects(body);
  showFit(body.fit);
  showJson(body);
}

// `fit`: how well the rendering of the answer explains the image. Calibrated, `score` is the
// fraction of valid scenes that fit worse and `not_a_scene` flags an image outside what the
// world can explain; uncalibrated, only the raw log-likelihood per pixel is known.
function showFit(fit) {
  const line = $("fit");
  line.hidden = !fit;
  line.classList.toggle("warning", Boolean(fit && fit.not_a_scene));
  if (!fit) return;
  const raw = `log-likelihood ${fmt(fit.log_likelihood_per_pixel)} per pixel`;
  if (!fit.calibrated) {
    line.textContent = `Fit: uncalibrated (${raw}; run air3d calibrate on the checkpoint ` +
      "to get a score and the not-a-scene flag).";
    return;
  }
  const flag = fit.not_a_scene
    ? "Not a scene: this image is outside what the model can explain; the objects below " +
      "are not to be trusted. "
    : "";
  line.textContent = `${flag}Fit ${fmt(fit.score)}: fits better than ` +
    `${Math.round(100 * fit.score)}% of valid scenes (${raw}).`;
}

function showJson(body) {
  const text = JSON.stringify(body, null, 2);
  $("json").textContent = text;
  const link = $("download-json");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  $("json-actions").hidden = false;
  $("copied").textContent = "";
}

async function copyJson() {
  const text = $("json").textContent;
  try {
    await navigator.clipboard.writeText(text);
  } catch {  // no clipboard API (an insecure origin): select the text for Ctrl+C
    $("json").closest("details").open = true;
    getSelection().selectAllChildren($("json"));
    $("copied").textContent = "Selected: press Ctrl+C to copy.";
    return;
  }
  $("copied").textContent = "Copied.";
}

// The rows [first, last) of the model's square input that hold the upload: all of them, or
// a world's letterboxed frame (CLEVR's 320 x 240).
function frameRows(model) {
  return model.frame_rows || [0, model.image_size];
}

// Both images at the model's input size, as the model saw the input (the reconstruction's
// frame rows only); per pixel the mean absolute difference over the colour channels, four
// times brighter (small ones show).
async function showDifference(input, reconstruction, size, [first, last]) {
  const rows = last - first;
  const pixels = async (blob, top) => {
    const canvas = new OffscreenCanvas(size, rows);
    const context = canvas.getContext("2d");
    const bitmap = await createImageBitmap(blob);
    const height = top === null ? bitmap.height : rows;
    context.drawImage(bitmap, 0, top || 0, bitmap.width, height, 0, 0, size, rows);
    return context.getImageData(0, 0, size, rows);
  };
  const [a, b] = await Promise.all([pixels(input, null), pixels(reconstruction, first)]);
  const canvas = new OffscreenCanvas(size, rows);
  const context = canvas.getContext("2d");
  const out = context.createImageData(size, rows);
  let total = 0;
  for (let i = 0; i < a.data.length; i += 4) {
    const d = (Math.abs(a.data[i] - b.data[i]) + Math.abs(a.data[i + 1] - b.data[i + 1]) +
      Math.abs(a.data[i + 2] - b.data[i + 2])) / 3;
    total += d;
    out.data[i] = out.data[i + 1] = out.data[i + 2] = Math.min(255, 4 * d);  // 4x: visible
    out.data[i + 3] = 255;
  }
  context.putImageData(out, 0, 0);
  $("difference").src = URL.createObjectURL(await canvas.convertToBlob({ type: "image/png" }));
  $("difference-value").textContent = `(mean ${(total / (size * rows) / 255).toFixed(3)})`;
}

// "red large metal cube": the world's attribute values (none in a world without), the shape.
function describe(obj) {
  const attributes = Object.keys(obj.attribute_probs || {});
  return [...attributes.map((name) => obj[name]), obj.shape].join(" ");
}

// q's probability of each choice: the shape's, then each attribute's.
function probabilities(obj) {
  const probs = [`p(shape) ${fmt(obj.shape_probs[obj.shape])}`];
  for (const [name, values] of Object.entries(obj.attribute_probs || {})) {
    probs.push(`p(${name}) ${fmt(values[obj[name]])}`);
  }
  return probs.join(", ");
}

function showObjects(body) {
  const size = body.model.image_size;
  const [first, last] = frameRows(body.model);
  $("input-frame").style.aspectRatio = `${size} / ${last - first}`;
  $("count").textContent = `(${body.count})`;
  $("model").textContent = `model ${body.model.name}, checkpoint ${body.model.checkpoint_hash}`;
  if (body.count === 0) {
    const li = document.createElement("li");
    li.className = "none";
    li.textContent = "no objects found";
    $("objects").append(li);
  }
  body.objects.forEach((obj, i) => {
    const li = document.createElement("li");
    li.className = "object";
    const [x, , z] = obj.position;
    // How far the centre may be off, and how sure the whole object is, where given.
    const spread = obj.position_sd == null ? "" : ` (±${fmt(obj.position_sd)})`;
    const confidence = obj.confidence == null ? "" : `, confidence ${fmt(obj.confidence)}`;
    li.textContent = `${describe(obj)} at x=${fmt(x)}, z=${fmt(z)}${spread}, ` +
      `yaw ${fmt(obj.yaw_deg)}°, presence ${fmt(obj.presence)}${confidence}, ` +
      `${probabilities(obj)}`;
    $("objects").append(li);
    const marker = document.createElement("div");
    marker.className = "marker";
    const label = document.createElement("span");
    label.textContent = String(i + 1);
    marker.append(label);
    marker.title = `${i + 1}: ${describe(obj)}`;
    marker.style.left = `${(100 * obj.pixel[0]) / size}%`;
    marker.style.top = `${(100 * (obj.pixel[1] - first)) / (last - first)}%`;
    $("input-frame").append(marker);
  });
}

async function example(index) {
  const response = await fetch(`/static/examples/${index}.png`);
  if (!response.ok) throw new Error(`no example ${index}`);
  await analyze(await response.blob());
}

function run(promise) {
  promise.catch((error) => state("error", `Error: ${error.message}`));
}

$("file").addEventListener("change", (e) => e.target.files[0] && run(analyze(e.target.files[0])));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) run(analyze(e.dataTransfer.files[0]));
});
document.querySelectorAll("[data-example]").forEach((button) =>
  button.addEventListener("click", () => run(example(button.dataset.example))));
$("key").addEventListener("change", () => localStorage.setItem("air3d-key", $("key").value));
$("copy-json").addEventListener("click", () => run(copyJson()));
window.air3d = { showAnswer };  // for tests that show a given answer

const params = new URLSearchParams(location.search);
if (params.has("example")) run(example(params.get("example")));  // /?example=0 runs one at once
